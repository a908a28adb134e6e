import vault from 'node-vault';
import { VaultError, VaultSecretSource } from '../../core/vault';
import { testStack, uniqueName } from '../support/stack';

describe('Vault secret source (real Vault dev server)', () => {
  const stack = testStack();
  const admin = vault({ apiVersion: 'v1', endpoint: stack.vault.address, token: stack.vault.token });
  const tokenSource = (cacheTtlMs = 0) => new VaultSecretSource({ address: stack.vault.address, token: stack.vault.token, cacheTtlMs });

  test('reads KV v2 (secret/data/...) and KV v1 mounts alike', async () => {
    const v2 = `secret/data/${uniqueName('kv2')}`;
    await admin.write(v2, { data: { api_key: 'v2-key' } });
    const mount = uniqueName('kv1').toLowerCase();
    await admin.mount({ mount_point: mount, type: 'kv', options: { version: '1' } });
    await admin.write(`${mount}/app`, { api_key: 'v1-key' });

    // A KV v1 mount of its own is read only where the operator allows it (TC_VAULT_PATHS).
    const source = new VaultSecretSource({ address: stack.vault.address, token: stack.vault.token, cacheTtlMs: 0, allowedPaths: ['secret/', `${mount}/`] });
    expect(await source.read(v2)).toEqual({ api_key: 'v2-key' });
    expect(await source.read(`${mount}/app`)).toEqual({ api_key: 'v1-key' });
  });

  test('caches each path for the TTL, then reads the new value', async () => {
    const path = `secret/data/${uniqueName('ttl')}`;
    await admin.write(path, { data: { token: 'first' } });
    const source = tokenSource(400);
    expect(await source.read(path)).toEqual({ token: 'first' });
    await admin.write(path, { data: { token: 'second' } });
    expect(await source.read(path)).toEqual({ token: 'first' });
    await new Promise((r) => setTimeout(r, 500));
    expect(await source.read(path)).toEqual({ token: 'second' });
  });

  test('expired cache entries are dropped without another read', async () => {
    const paths = [uniqueName('expiring'), uniqueName('expiring'), uniqueName('expiring')].map((name) => `secret/data/${name}`);
    for (const path of paths) await admin.write(path, { data: { token: path } });
    const source = tokenSource(200);
    for (const path of paths) await source.read(path);
    expect(source.cacheSize).toBe(3);
    const until = Date.now() + 3_000;
    while (source.cacheSize > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 25));
    expect(source.cacheSize).toBe(0);
  });

  test('the cache holds at most cacheMaxEntries secrets, dropping the one read longest ago', async () => {
    const [first, second, third] = [uniqueName('capped'), uniqueName('capped'), uniqueName('capped')].map((name) => `secret/data/${name}`);
    for (const path of [first, second, third]) await admin.write(path, { data: { token: 'before' } });
    const source = new VaultSecretSource({ address: stack.vault.address, token: stack.vault.token, cacheTtlMs: 60_000, cacheMaxEntries: 2 });
    for (const path of [first, second, third]) await source.read(path);
    expect(source.cacheSize).toBe(2);
    for (const path of [first, second]) await admin.write(path, { data: { token: 'after' } });
    // The second is still cached; the first was dropped, so Vault is asked again.
    expect(await source.read(second)).toEqual({ token: 'before' });
    expect(await source.read(first)).toEqual({ token: 'after' });
  });

  test('AppRole login reads what its policy allows and is refused the rest', async () => {
    const allowed = `secret/data/${uniqueName('approle')}`;
    await admin.write(allowed, { data: { password: 'from-approle' } });
    await admin.enableAuth({ mount_point: 'approle', type: 'approle' }).catch((err: { response?: { body?: { errors?: string[] } } }) => {
      if (!JSON.stringify(err.response?.body).includes('already in use')) throw err;
    });
    const policy = uniqueName('policy').toLowerCase();
    await admin.addPolicy({ name: policy, rules: `path "${allowed}" { capabilities = ["read"] }` });
    const role = uniqueName('role').toLowerCase();
    await admin.write(`auth/approle/role/${role}`, { token_policies: policy, token_ttl: '10m' });
    const roleId = (await admin.read(`auth/approle/role/${role}/role-id`)).data.role_id as string;
    const secretId = (await admin.write(`auth/approle/role/${role}/secret-id`, {})).data.secret_id as string;

    const source = new VaultSecretSource({ address: stack.vault.address, appRole: { roleId, secretId }, cacheTtlMs: 0 });
    expect(await source.read(allowed)).toEqual({ password: 'from-approle' });
    const refused = await source.read('secret/data/someone-elses').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(VaultError);
    expect((refused as VaultError).kind).toBe('denied');
    expect((refused as Error).message).toContain('secret/data/someone-elses');

    const wrong = new VaultSecretSource({ address: stack.vault.address, appRole: { roleId, secretId: 'not-the-secret-id' } });
    const loginError = await wrong.read(allowed).catch((e: unknown) => e);
    expect(loginError).toBeInstanceOf(VaultError);
    expect((loginError as Error).message).toMatch(/AppRole login/);
    expect((loginError as Error).message).not.toContain('not-the-secret-id');
  });

  test("paths outside the allowed prefixes, and Vault's own, are refused as denied before Vault is asked", async () => {
    const team = `secret/data/${uniqueName('team')}/`;
    const inside = `${team}billing`;
    const outside = `secret/data/${uniqueName('payroll')}`;
    for (const path of [inside, outside]) await admin.write(path, { data: { token: `value-of-${path}` } });
    // The token reads all of them directly, lookup-self included: only the source's own check stands between.
    expect(((await admin.read('auth/token/lookup-self')) as { data: { id: string } }).data.id).toBe(stack.vault.token);
    expect((await admin.read(outside)).data.data).toEqual({ token: `value-of-${outside}` });

    const source = new VaultSecretSource({ address: stack.vault.address, token: stack.vault.token, cacheTtlMs: 0, allowedPaths: [team] });
    expect(source.allowedPaths).toEqual([team]);
    expect(await source.read(inside)).toEqual({ token: `value-of-${inside}` });
    const cases: Array<[string, RegExp]> = [
      [outside, new RegExp(`^Vault secret ${outside} is outside the Vault paths connectors may read: ${team} \\(TC_VAULT_PATHS\\)$`)],
      ['auth/token/lookup-self', /reaches Vault's auth\/ mount/],
      [`${team}../../../../auth/token/lookup-self`, /empty, \. or \.\. segment/],
      [`${team}lookup-self`, /names lookup-self/],
      ['sys/mounts', /reaches Vault's sys\/ mount/],
      ['cubbyhole/mine', /reaches Vault's cubbyhole\/ mount/],
      [`${team}x?list=true`, /is not a Vault API path/],
    ];
    for (const [path, message] of cases) {
      const refused = await source.read(path).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(VaultError);
      expect(refused).toMatchObject({ kind: 'denied', message: expect.stringMatching(message) });
      expect((refused as Error).message).not.toContain(stack.vault.token);
      expect((refused as Error).message).not.toContain('value-of-');
    }
    // A path an inline connector gave may hold control characters: the message shows them escaped.
    const escaped = await source.read(`${team}\u001b[2Jx`).catch((e: Error) => e);
    expect(escaped).toMatchObject({ kind: 'denied', message: expect.stringContaining(`${team}\\u001b[2Jx is not a Vault API path`) });
    expect((escaped as Error).message).not.toContain('\u001b');
    // The default is the KV mount secret/, and nothing given in code reaches Vault's own mounts.
    expect(tokenSource().allowedPaths).toEqual(['secret/']);
    await expect(tokenSource().read('auth/token/lookup-self')).rejects.toMatchObject({ kind: 'denied' });
    expect(() => new VaultSecretSource({ address: stack.vault.address, token: stack.vault.token, allowedPaths: ['auth/token/'] })).toThrow(
      'allowedPaths: "auth/token/" reaches Vault\'s auth/ mount, which connectors may never read (it holds tokens and Vault\'s own settings)',
    );
  });

  test('a missing path and an unreachable Vault are told apart', async () => {
    const missing = await tokenSource().read('secret/data/nothing-here').catch((e: VaultError) => e);
    expect(missing).toMatchObject({ kind: 'not_found', message: expect.stringContaining('secret/data/nothing-here') });
    const down = await new VaultSecretSource({ address: 'http://127.0.0.1:9', token: 't', requestTimeoutMs: 2_000 })
      .read('secret/data/x')
      .catch((e: VaultError) => e);
    expect(down).toMatchObject({ kind: 'unavailable', message: expect.stringContaining('unreachable') });
  });
});
