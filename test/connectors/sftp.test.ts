import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { MAX_INLINE_BYTES, type SftpIntrospection } from '../../connectors/sftp';
import { freePort } from '../../scripts/devstack/process';
import { generateKeyPair, type SshKeyPair } from '../../scripts/devstack/sshd';
import type { ConnectionTestResult } from '../../workflows/types';
import { historyText } from '../support/harness';
import { recordSecrets } from '../support/leak-sweep';
import { startSshStack, type SshStack } from '../support/ssh-stack';

const hex = () => randomBytes(6).toString('hex');
const USER = 'tc_sftp';
const PASSWORD = `sftp-pw-${hex()}`;
/** Not a secret: file content that must show up in the history of the call that reads it. */
const MARKER = `marker-${hex()}`;

// The SFTP connector type against a real OpenSSH server (internal-sftp) of this file's own, through a
// workflow's connect(), the CLI and the management API.
describe('SFTP connector', () => {
  let stack: SshStack;
  let key: SshKeyPair;
  let root: string;
  const name = `sftp_${hex()}`;
  const keyed = `sftp_key_${hex()}`;

  beforeAll(async () => {
    key = await generateKeyPair();
    recordSecrets('the secrets of sftp.test.ts', [PASSWORD, key.privateKey]);
    stack = await startSshStack('sftp', { user: USER, password: PASSWORD, authorizedKeys: [key.publicKey] });
    const { sshd, harness } = stack;
    root = path.join(sshd.files, 'exports');
    mkdirSync(root);
    const { uid, gid } = statSync(sshd.files);
    // The user owns its root; outside it, a file it could read, which the connector must never reach.
    chownSync(root, uid, gid);
    writeFileSync(path.join(sshd.files, 'outside.txt'), 'outside root\n', { mode: 0o644 });
    const connection = { host: sshd.host, port: sshd.port, user: USER, host_key: sshd.hostKeyFingerprint, root };
    await harness.service.apply({ name, type: 'SFTP', value: { ...connection, password: PASSWORD } });
    await harness.service.apply({ name: keyed, type: 'SFTP', value: { ...connection, private_key: key.privateKey } });
  });

  afterAll(async () => {
    await stack?.close();
  });

  const call = (overrides: Record<string, unknown>, connector = name) => stack.harness.call(connector, overrides);
  const output = async (overrides: Record<string, unknown>, connector = name) => {
    const { result } = await call(overrides, connector);
    expect(result.error).toBeUndefined();
    return result.details!.output as Record<string, unknown>;
  };

  test('put, get, list, stat, mkdir, rename and remove through connect(); the files are on the server as written', async () => {
    expect(await output({ operation: 'mkdir', path: 'reports' })).toEqual({ path: 'reports', created: true });
    const csv = `id,total\n1,${MARKER}\n`;
    expect(await output({ operation: 'put', path: 'reports/june.csv', content: csv, mode: '0640' })).toEqual({ path: 'reports/june.csv', size: Buffer.byteLength(csv) });
    const onDisk = path.join(root, 'reports', 'june.csv');
    expect(readFileSync(onDisk, 'utf8')).toBe(csv);
    expect(statSync(onDisk).mode & 0o777).toBe(0o640);

    const { result: got } = await call({ operation: 'get', path: 'reports/june.csv' });
    expect(got.details!.output).toEqual({ path: 'reports/june.csv', size: Buffer.byteLength(csv), encoding: 'utf8', content: csv });
    // The content is in the history (where the marker must be), the password is not.
    const history = await historyText(stack.harness.client, got.workflowId!);
    expect(history).toContain(MARKER);
    expect(history).not.toContain(PASSWORD);

    const bytes = Buffer.from([0, 255, 1, 254]);
    await output({ operation: 'put', path: 'reports/blob.bin', content: bytes.toString('base64'), encoding: 'base64' });
    expect(readFileSync(path.join(root, 'reports', 'blob.bin'))).toEqual(bytes);
    expect(await output({ operation: 'get', path: 'reports/blob.bin', encoding: 'base64' }, keyed)).toMatchObject({ content: bytes.toString('base64'), size: 4 });

    const listed = await output({ operation: 'list', path: 'reports' });
    expect(listed).toMatchObject({ path: 'reports', truncated: false, entries: [{ name: 'blob.bin', type: 'file', size: 4 }, { name: 'june.csv', type: 'file', mode: '0640' }] });
    expect(await output({ operation: 'stat', path: 'reports' })).toMatchObject({ name: 'reports', type: 'directory' });

    expect(await output({ operation: 'rename', path: 'reports/june.csv', to: 'reports/2024-06.csv' })).toEqual({ path: 'reports/june.csv', to: 'reports/2024-06.csv' });
    expect(existsSync(path.join(root, 'reports', '2024-06.csv'))).toBe(true);
    expect(await output({ operation: 'remove', path: 'reports/2024-06.csv' })).toEqual({ path: 'reports/2024-06.csv', removed: 'file' });
    expect(existsSync(path.join(root, 'reports', '2024-06.csv'))).toBe(false);
  });

  test('a file over the inline limit is refused naming path and the limit; so is content over it', async () => {
    writeFileSync(path.join(root, 'big.bin'), Buffer.alloc(MAX_INLINE_BYTES + 1, 7));
    const { result } = await call({ operation: 'get', path: 'big.bin' });
    expect(result.error).toMatchObject({ type: 'Connector.InvalidInput', nonRetryable: true });
    expect(result.error!.message).toContain(`path: "big.bin" is ${MAX_INLINE_BYTES + 1} bytes, over the inline limit of ${MAX_INLINE_BYTES} bytes (1 MiB)`);
    const tooMuch = await call({ operation: 'put', path: 'big2.bin', content: Buffer.alloc(MAX_INLINE_BYTES + 1).toString('base64'), encoding: 'base64' });
    expect(tooMuch.result.error).toMatchObject({ type: 'Connector.InvalidInput', nonRetryable: true });
    expect(tooMuch.result.error!.message).toContain('content:');
    expect(existsSync(path.join(root, 'big2.bin'))).toBe(false);
  });

  test('a path escaping root is refused naming the field: .., absolute, and a symbolic link pointing outside', async () => {
    symlinkSync(path.dirname(root), path.join(root, 'up'));
    symlinkSync(path.join(path.dirname(root), 'outside.txt'), path.join(root, 'outside-link.txt'));
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ operation: 'get', path: '../outside.txt' }, 'path: "../outside.txt" contains ".."'],
      [{ operation: 'get', path: 'reports/../../outside.txt' }, 'contains ".."'],
      [{ operation: 'get', path: path.join(path.dirname(root), 'outside.txt') }, 'is absolute, and paths are relative to root'],
      [{ operation: 'get', path: 'up/outside.txt' }, 'path: "up/outside.txt" leads outside root through a symbolic link'],
      [{ operation: 'get', path: 'outside-link.txt' }, 'leads outside root through a symbolic link'],
      [{ operation: 'list', path: 'up' }, 'leads outside root'],
      [{ operation: 'put', path: 'up/planted.txt', content: 'x' }, 'leads outside root through a symbolic link in its folder'],
      [{ operation: 'put', path: 'outside-link.txt', content: 'overwritten' }, 'leads outside root'],
      [{ operation: 'rename', path: 'reports/blob.bin', to: '../stolen.bin' }, 'to: "../stolen.bin" contains ".."'],
      [{ operation: 'rename', path: 'reports/blob.bin', to: 'up/stolen.bin' }, 'to: "up/stolen.bin" leads outside root'],
    ];
    for (const [overrides, expected] of cases) {
      const { result } = await call(overrides);
      expect([overrides, result.error?.type, result.error?.nonRetryable]).toEqual([overrides, 'Connector.InvalidInput', true]);
      expect([overrides, result.error!.message]).toEqual([overrides, expect.stringContaining(expected)]);
    }
    expect(readFileSync(path.join(path.dirname(root), 'outside.txt'), 'utf8')).toBe('outside root\n');
    expect(existsSync(path.join(path.dirname(root), 'planted.txt'))).toBe(false);
    expect(existsSync(path.join(path.dirname(root), 'stolen.bin'))).toBe(false);
    // Removing the link removes the link, never its target.
    expect(await output({ operation: 'remove', path: 'outside-link.txt' })).toEqual({ path: 'outside-link.txt', removed: 'symlink' });
    expect(existsSync(path.join(path.dirname(root), 'outside.txt'))).toBe(true);
  });

  test("an override of root or allow_absolute_paths does not take the connector's stored password along", async () => {
    for (const overrides of [{ root: '/' }, { allow_absolute_paths: true }, { root: path.dirname(root) }]) {
      const { result } = await call({ operation: 'list', ...overrides });
      expect([overrides, result.error?.type]).toEqual([overrides, 'Connector.DestinationNotAllowed']);
    }
  });

  test('a wrong password is a non-retryable Connector.External.Auth naming the connector; an unreachable server is retryable', async () => {
    const { sshd, harness } = stack;
    const wrong = `sftp_wrong_${hex()}`;
    const wrongPassword = `wrong-${hex()}`;
    recordSecrets('a wrong password of sftp.test.ts', [wrongPassword]);
    await harness.service.apply({ name: wrong, type: 'SFTP', value: { host: sshd.host, port: sshd.port, user: USER, host_key: sshd.hostKeyFingerprint, password: wrongPassword } });
    const seen = stack.logMark();
    const { result } = await call({ operation: 'list' }, wrong);
    expect(result.error).toMatchObject({ type: 'Connector.External.Auth', nonRetryable: true });
    expect(result.error!.message).toContain(`SFTP connector ${wrong} (${USER}@127.0.0.1:${sshd.port}): the server refused the credentials of user ${USER}`);
    expect(seen().filter((line) => line.startsWith(`Failed password for ${USER}`))).toHaveLength(1);

    const down = `sftp_down_${hex()}`;
    await harness.service.apply({ name: down, type: 'SFTP', value: { host: '127.0.0.1', port: await freePort(), user: USER, host_key: sshd.hostKeyFingerprint, password: PASSWORD } });
    const unreachable = await call({ operation: 'list' }, down);
    expect(unreachable.result.error).toMatchObject({ type: 'Connector.External.Network', nonRetryable: false });
  });

  test('test and introspect from a workflow, the CLI and the API; the test without host_key reports the offered key', async () => {
    const { harness, sshd } = stack;
    mkdirSync(path.join(root, 'tree', 'deeper', 'deepest'), { recursive: true });
    writeFileSync(path.join(root, 'tree', 'deeper', 'leaf.txt'), 'leaf');
    const options = { taskQueue: harness.connectorQueue };
    const { result: tested } = await harness.run<ConnectionTestResult>('testConnector', { connector: name, options });
    expect(tested).toMatchObject({ ok: true, message: expect.stringContaining(`SFTP root ${root}`) });
    const { result: tree } = await harness.run<SftpIntrospection>('introspect', { connector: keyed, options });
    expect(tree.root).toBe(root);
    const treeFolder = tree.entries.find((e) => e.name === 'tree');
    // Two levels: tree and its children, whose own children are not listed.
    expect(treeFolder).toMatchObject({ type: 'directory', children: [{ name: 'deeper', type: 'directory' }] });
    expect((treeFolder!.children![0] as { children?: unknown }).children).toBeUndefined();

    const cli = await stack.cli(['test', name]);
    expect(cli).toMatchObject({ code: 0, stdout: expect.stringMatching(/^ok: Logged in to 127\.0\.0\.1:\d+ as tc_sftp \(host key pinned\); SFTP root /) });
    const cliTree = JSON.parse((await stack.cli(['introspect', keyed])).stdout) as SftpIntrospection;
    expect(cliTree.root).toBe(root);
    const apiTree = await stack.apiCall('POST', `/v1/connectors/${name}/introspect`);
    expect(apiTree.json).toMatchObject({ root });

    const unpinned = `sftp_unpinned_${hex()}`;
    await harness.service.apply({ name: unpinned, type: 'SFTP', value: { host: sshd.host, port: sshd.port, user: USER, password: PASSWORD, root } });
    const apiTest = await stack.apiCall('POST', `/v1/connectors/${unpinned}/test`);
    expect(apiTest.json).toMatchObject({ ok: false, message: expect.stringContaining(`offered host key ${sshd.hostKeyFingerprint} (ssh-ed25519)`) });
    const refused = await call({ operation: 'list' }, unpinned);
    expect(refused.result.error).toMatchObject({ type: 'Connector.InvalidInput', message: expect.stringContaining('host_key is not set') });
    for (const text of [cli.stdout, apiTree.text, apiTest.text]) expect(text).not.toContain(PASSWORD);
  });
});
