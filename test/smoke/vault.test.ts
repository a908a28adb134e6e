import vault from 'node-vault';
import { testStack, uniqueName } from '../support/stack';

describe('Vault dev server (real)', () => {
  const stack = testStack();
  const client = vault({ apiVersion: 'v1', endpoint: stack.vault.address, token: stack.vault.token });

  test('a KV v2 secret written through node-vault reads back, with its version', async () => {
    const path = `secret/data/${uniqueName('smoke')}`;
    const written = await client.write(path, { data: { api_key: 'sk-smoke', region: 'eu' } });
    expect(written.data.version).toBe(1);
    const read = await client.read(path);
    expect(read.data.data).toEqual({ api_key: 'sk-smoke', region: 'eu' });
    expect(read.data.metadata.version).toBe(1);
  });

  test('the server is initialised and unsealed, and refuses a wrong token', async () => {
    const health = await client.health();
    expect(health).toMatchObject({ initialized: true, sealed: false });
    const intruder = vault({ apiVersion: 'v1', endpoint: stack.vault.address, token: 'wrong-token' });
    await expect(intruder.read('secret/data/anything')).rejects.toMatchObject({ response: { statusCode: 403 } });
  });
});
