import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import type { SshCommandResult, SshIntrospection } from '../../connectors/ssh';
import { freePort } from '../../scripts/devstack/process';
import { generateKeyPair, type SshKeyPair } from '../../scripts/devstack/sshd';
import type { ConnectionTestResult } from '../../workflows/types';
import { soon } from '../support/browser';
import { callSummary, historyText } from '../support/harness';
import { recordSecrets } from '../support/leak-sweep';
import { keyMaterialLine, startSshStack, type SshStack } from '../support/ssh-stack';
import { uniqueName } from '../support/stack';

const hex = () => randomBytes(6).toString('hex');
const USER = 'tc_ssh';
const PASSWORD = `ssh-pw-${hex()}`;
const PASSPHRASE = `ssh-pp-${hex()}`;
/** The passphrase of a key a workflow brings in its overrides: the workflow's own data, in its history by design. */
const WORKFLOW_PASSPHRASE = `workflow-pp-${hex()}`;
/** Not a secret: planted where it must show up (an env value echoed to stdout), so the leak checks are known to see. */
const MARKER = `marker-${hex()}`;

/** Processes whose whole command line is `args` (the test runs on the SSH server's machine). */
function processesWith(args: string): string[] {
  const out = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return out.split('\n').filter((line) => line.trim().replace(/^\d+\s+/, '') === args);
}

// The SSH connector type against a real OpenSSH server of this file's own, through a workflow's
// connect(), the CLI and the management API.
describe('SSH connector', () => {
  let stack: SshStack;
  let key: SshKeyPair;
  let strangerKey: SshKeyPair;
  let workflowKey: SshKeyPair;
  const names = { password: `ssh_pw_${hex()}`, key: `ssh_key_${hex()}`, unpinned: `ssh_unpinned_${hex()}`, impostor: `ssh_impostor_${hex()}` };

  beforeAll(async () => {
    key = await generateKeyPair({ passphrase: PASSPHRASE, comment: 'tc ssh test key' });
    strangerKey = await generateKeyPair();
    // A workflow's own credential, given in its overrides: the workflow's data, in its history by design, so not recorded.
    workflowKey = await generateKeyPair({ passphrase: WORKFLOW_PASSPHRASE });
    // The whole key, and a line of its material: a history holding part of the key would not hold the whole.
    recordSecrets('the secrets of ssh.test.ts', [PASSWORD, PASSPHRASE, key.privateKey, keyMaterialLine(key.privateKey), strangerKey.privateKey, keyMaterialLine(strangerKey.privateKey)]);
    stack = await startSshStack('ssh', { user: USER, password: PASSWORD, authorizedKeys: [key.publicKey, workflowKey.publicKey] });
    const { sshd, harness } = stack;
    const connection = { host: sshd.host, port: sshd.port, user: USER, host_key: sshd.hostKeyFingerprint };
    await harness.service.apply({ name: names.password, type: 'SSH', description: `password ${MARKER}`, value: { ...connection, password: PASSWORD } });
    await harness.service.apply({ name: names.key, type: 'SSH', value: { ...connection, private_key: key.privateKey, passphrase: PASSPHRASE } });
  });

  afterAll(async () => {
    await stack?.close();
  });

  const call = (connector: string, overrides: Record<string, unknown>) => stack.harness.call(connector, overrides);

  test('a stored connector with a password runs a command with env and cwd through connect(); sshd logged the password accepted for the user', async () => {
    const seen = stack.logMark();
    const { result } = await call(names.password, { command: 'echo "$GREETING"; pwd; echo to-stderr >&2', env: { GREETING: MARKER }, cwd: '/tmp' });
    expect(result.error).toBeUndefined();
    const output = result.details!.output as SshCommandResult;
    expect(output).toMatchObject({ exit_code: 0, signal: null, stdout: `${MARKER}\n/tmp\n`, stderr: 'to-stderr\n', stdout_truncated: false, stderr_truncated: false });
    expect(seen().some((line) => line.startsWith(`Accepted password for ${USER} from 127.0.0.1`))).toBe(true);
    // The secret was used (above); it is in no log line of the server, and in no history, where the marker is.
    expect(stack.sshd.logLines().join('\n')).not.toContain(PASSWORD);
    const history = await historyText(stack.harness.client, result.workflowId!);
    expect(history).toContain(MARKER);
    expect(history).not.toContain(PASSWORD);
    expect(result.details!.inputs).toMatchObject({ password: '********', host_key: stack.sshd.hostKeyFingerprint });
    // The summary names the user, host and command word, never an env value.
    const summary = await callSummary(stack.harness.client, result.workflowId!);
    expect(summary).toBe(`SSH ${names.password} ssh ${USER}@127.0.0.1: echo`);
  });

  test('a script on stdin with an encrypted private key: the server accepted the key whose public half is in authorized_keys', async () => {
    const seen = stack.logMark();
    const { result } = await call(names.key, { script: 'set -e\nprintf "%s\\n" "$0"\nid -un\n' });
    expect(result.error).toBeUndefined();
    expect((result.details!.output as SshCommandResult).stdout).toBe(`/bin/sh\n${USER}\n`);
    expect(seen().some((line) => line.includes(`Accepted publickey for ${USER} from 127.0.0.1`) && line.includes(key.fingerprint))).toBe(true);
    const history = await historyText(stack.harness.client, result.workflowId!);
    expect(history).toContain(USER);
    for (const secret of [PASSPHRASE, key.privateKey]) expect(history).not.toContain(secret);
  });

  test('calls through one stored connector reuse its connection', async () => {
    await call(names.password, { command: 'true' });
    const seen = stack.logMark();
    for (let i = 0; i < 3; i++) expect((await call(names.password, { command: 'true' })).result.error).toBeUndefined();
    expect(seen().filter((line) => line.startsWith('Connection from'))).toEqual([]);
  });

  test('a non-zero exit fails with the non-retryable Connector.Remote.ExitCode, unless the call accepts it', async () => {
    const seen = stack.logMark();
    const { result } = await call(names.password, { command: 'echo partial; echo went-wrong >&2; exit 3' });
    expect(result.error).toMatchObject({ type: 'Connector.Remote.ExitCode', nonRetryable: true });
    expect(result.error!.message).toContain('`echo` exited with code 3, which accept_exit_codes (0) does not accept; stderr ends: went-wrong');
    // One attempt: the pooled connection logs no new login for a retry either.
    expect(seen().filter((line) => line.startsWith('Accepted'))).toHaveLength(0);

    const accepted = await call(names.password, { command: 'exit 1', accept_exit_codes: [0, 1] });
    expect((accepted.result.details!.output as SshCommandResult).exit_code).toBe(1);
  });

  test('output over max_output is cut at the bound and flagged, stdout and stderr each', async () => {
    const { result } = await call(names.password, { command: "head -c 5000 /dev/zero | tr '\\0' o; head -c 300 /dev/zero | tr '\\0' e >&2", max_output: 1000 });
    const output = result.details!.output as SshCommandResult;
    expect(output.stdout).toBe('o'.repeat(1000));
    expect(output.stdout_truncated).toBe(true);
    expect(output.stderr).toBe('e'.repeat(300));
    expect(output.stderr_truncated).toBe(false);
  });

  test('a host key that is not the pinned one is refused before authentication: sshd logged the connection and no authentication attempt', async () => {
    const { sshd, harness } = stack;
    await harness.service.apply({ name: names.impostor, type: 'SSH', value: { host: sshd.host, port: sshd.port, user: USER, host_key: strangerKey.fingerprint, password: PASSWORD } });
    const seen = stack.logMark();
    const { result } = await call(names.impostor, { command: 'true' });
    expect(result.error).toMatchObject({ type: 'Connector.HostKeyMismatch', nonRetryable: true });
    expect(result.error!.message).toContain(`SSH connector ${names.impostor} (${USER}@127.0.0.1:${sshd.port}): the server offered host key ${sshd.hostKeyFingerprint} (ssh-ed25519), which host_key does not pin (${strangerKey.fingerprint}): refused before any credential was sent`);
    await soon(() => expect(seen().filter((line) => line.startsWith('Connection from 127.0.0.1')).length).toBeGreaterThanOrEqual(1));
    // A login attempt logs `userauth-request` at DEBUG1 before anything else of authentication (see the first test's lines).
    expect(seen().filter((line) => /userauth-request|Accepted|Failed|Invalid user/.test(line))).toEqual([]);
  });

  test('a wrong password and an unknown key are refused as non-retryable Connector.External.Auth naming the connector and the user', async () => {
    const { sshd, harness } = stack;
    const wrong = `ssh_wrong_${hex()}`;
    const wrongPassword = `wrong-${hex()}`;
    recordSecrets('a wrong password of ssh.test.ts', [wrongPassword]);
    await harness.service.apply({ name: wrong, type: 'SSH', value: { host: sshd.host, port: sshd.port, user: USER, host_key: sshd.hostKeyFingerprint, password: wrongPassword } });
    const seen = stack.logMark();
    const { result } = await call(wrong, { command: 'true' });
    expect(result.error).toMatchObject({ type: 'Connector.External.Auth', nonRetryable: true });
    expect(result.error!.message).toContain(`SSH connector ${wrong} (${USER}@127.0.0.1:${sshd.port}): the server refused the credentials of user ${USER} (tried password)`);
    expect(seen().filter((line) => line.startsWith(`Failed password for ${USER}`))).toHaveLength(1);

    const unknownKey = `ssh_stranger_${hex()}`;
    await harness.service.apply({ name: unknownKey, type: 'SSH', value: { host: sshd.host, port: sshd.port, user: USER, host_key: sshd.hostKeyFingerprint, private_key: strangerKey.privateKey } });
    const stranger = await call(unknownKey, { command: 'true' });
    expect(stranger.result.error).toMatchObject({ type: 'Connector.External.Auth', nonRetryable: true });
    expect(stranger.result.error!.message).toContain(`SSH connector ${unknownKey} (${USER}@127.0.0.1:${sshd.port}): the server refused the credentials of user ${USER} (tried publickey)`);
    const history = await historyText(stack.harness.client, stranger.result.workflowId!);
    expect(history).toContain('the server refused the credentials');
    expect(history).not.toContain(keyMaterialLine(strangerKey.privateKey));

    // An inline connector refused alike says it is inline.
    const inline = await call({ type: 'SSH', host: sshd.host, port: sshd.port, user: USER, host_key: sshd.hostKeyFingerprint, password: `inline-${hex()}`, command: 'true' } as never, {});
    expect(inline.result.error).toMatchObject({ type: 'Connector.External.Auth', nonRetryable: true });
    expect(inline.result.error!.message).toContain(`SSH (inline) ${USER}@127.0.0.1:${sshd.port}: the server refused the credentials of user ${USER} (tried password)`);
  });

  test('an unreachable host is a retryable Connector.External.Network', async () => {
    const port = await freePort();
    const name = `ssh_down_${hex()}`;
    await stack.harness.service.apply({ name, type: 'SSH', value: { host: '127.0.0.1', port, user: USER, host_key: stack.sshd.hostKeyFingerprint, password: PASSWORD } });
    const { result } = await call(name, { command: 'true' });
    expect(result.error).toMatchObject({ type: 'Connector.External.Network', nonRetryable: false });
    expect(result.error!.message).toContain(`SSH connector ${name} (${USER}@127.0.0.1:${port}) failed: the connection was refused`);
  });

  test('cancelling the connection stops the remote command: its process is gone from the host', async () => {
    const marker = `600.${Date.now() % 1_000_000}`;
    const handle = await stack.harness.client.workflow.start('connection', {
      taskQueue: stack.harness.connectorQueue,
      workflowId: uniqueName('ssh-cancel'),
      // Longer than a local activity's limit, so the call is an activity task that heartbeats.
      args: [{ connector: names.password, overrides: { command: `sleep ${marker}; echo never`, timeout: '10m' }, options: { timeout: '10m' } }],
    });
    await soon(() => expect(processesWith(`sleep ${marker}`)).toHaveLength(1), 20_000);
    await handle.cancel();
    await expect(handle.result()).rejects.toThrow(WorkflowFailedError);
    await soon(() => expect(processesWith(`sleep ${marker}`)).toEqual([]), 15_000);
  });

  test('a timeout stops the command on the host and fails with a retryable Connector.External.Timeout', async () => {
    const marker = `700.${Date.now() % 1_000_000}`;
    const { result } = await stack.harness.call(names.password, { command: `sleep ${marker}`, timeout: '1500ms' }, { retry: { maximumAttempts: 1 } });
    expect(result.error).toMatchObject({ type: 'Connector.External.Timeout', nonRetryable: false });
    expect(result.error!.message).toContain('`sleep` ran longer than timeout (1500 ms) and was stopped on the remote host');
    await soon(() => expect(processesWith(`sleep ${marker}`)).toEqual([]), 10_000);
  });

  test('through a jump host the connection is tunnelled via the pinned jump host, each logging in with its own credentials; an unpinned jump host key is refused', async () => {
    const { sshd, harness } = stack;
    const name = `ssh_jump_${hex()}`;
    // The file's sshd is both the jump host (password) and, through its tunnel to itself, the server (key).
    const jump = { host: sshd.host, port: sshd.port, user: USER, host_key: sshd.hostKeyFingerprint, password: PASSWORD };
    await harness.service.apply({ name, type: 'SSH', value: { host: '127.0.0.1', port: sshd.port, user: USER, host_key: sshd.hostKeyFingerprint, private_key: key.privateKey, passphrase: PASSPHRASE, jump_host: jump } });
    const seen = stack.logMark();
    const { result } = await call(name, { command: 'id -un' });
    expect(result.error).toBeUndefined();
    expect((result.details!.output as SshCommandResult).stdout).toBe(`${USER}\n`);
    const lines = seen();
    expect(lines.some((line) => line.startsWith(`Accepted password for ${USER}`))).toBe(true);
    expect(lines.some((line) => line.includes('server_request_direct_tcpip') && line.includes(`target 127.0.0.1 port ${sshd.port}`))).toBe(true);
    expect(lines.some((line) => line.startsWith(`Accepted publickey for ${USER}`) && line.includes(key.fingerprint))).toBe(true);
    expect(result.details!.inputs).toMatchObject({ jump_host: { password: '********' }, private_key: '********' });

    const impostor = `ssh_jump_impostor_${hex()}`;
    await harness.service.apply({ name: impostor, type: 'SSH', value: { host: '127.0.0.1', port: sshd.port, user: USER, host_key: sshd.hostKeyFingerprint, password: PASSWORD, jump_host: { ...jump, host_key: strangerKey.fingerprint } } });
    const refused = await call(impostor, { command: 'true' });
    expect(refused.result.error).toMatchObject({ type: 'Connector.HostKeyMismatch', nonRetryable: true });
    expect(refused.result.error!.message).toContain(`through jump host ${USER}@127.0.0.1:${sshd.port}: the jump host offered host key ${sshd.hostKeyFingerprint} (ssh-ed25519), which jump_host.host_key does not pin`);
    // Another jump host is another destination: the stored secrets stay home.
    const moved = await call(name, { command: 'true', jump_host: { host: 'localhost' } });
    expect(moved.result.error).toMatchObject({ type: 'Connector.DestinationNotAllowed' });
  });

  test('test and introspect from a workflow: login and `true`; OS, kernel, shell and home', async () => {
    const { harness } = stack;
    const options = { taskQueue: harness.connectorQueue };
    const { result: tested } = await harness.run<ConnectionTestResult>('testConnector', { connector: names.key, options });
    expect(tested).toMatchObject({ ok: true, message: expect.stringContaining(`as ${USER} (host key pinned) and ran \`true\``) });
    const { result: described } = await harness.run<SshIntrospection>('introspect', { connector: names.key, options });
    expect(described).toMatchObject({ user: USER, os: expect.stringContaining('Debian'), kernel: { name: 'Linux' }, shell: '/bin/sh', home: stack.sshd.home });
  });

  test('without host_key a call is refused naming host_key, and the CLI and API tests report the key the server offers, sending nothing', async () => {
    const { sshd, harness } = stack;
    await harness.service.apply({ name: names.unpinned, type: 'SSH', value: { host: sshd.host, port: sshd.port, user: USER, password: PASSWORD } });
    const seen = stack.logMark();
    const { result } = await call(names.unpinned, { command: 'true' });
    expect(result.error).toMatchObject({ type: 'Connector.InvalidInput', nonRetryable: true });
    expect(result.error!.message).toContain(`SSH connector ${names.unpinned} (${USER}@127.0.0.1:${sshd.port}): host_key is not set`);

    const cli = await stack.cli(['test', names.unpinned]);
    expect(cli.code).toBe(1);
    expect(cli.stdout).toContain(`host_key is not set, so nothing was sent: 127.0.0.1:${sshd.port} offered host key ${sshd.hostKeyFingerprint} (ssh-ed25519)`);
    const api = await stack.apiCall('POST', `/v1/connectors/${names.unpinned}/test`);
    expect(api.status).toBe(200);
    expect(api.json).toMatchObject({ ok: false, message: expect.stringContaining(`offered host key ${sshd.hostKeyFingerprint}`) });
    // Both connected (the refused call did not), and neither tried to log in.
    expect(seen().filter((line) => line.startsWith('Connection from 127.0.0.1')).length).toBe(2);
    expect(seen().filter((line) => /userauth-request|Accepted|Failed/.test(line))).toEqual([]);
    for (const text of [cli.stdout, cli.stderr, api.text]) expect(text).not.toContain(PASSWORD);
  });

  test('the CLI and the API store, test and introspect a connector with a private key, and never answer with a secret', async () => {
    const { sshd } = stack;
    const viaCli = `ssh_cli_${hex()}`;
    const document = { name: viaCli, type: 'SSH', description: `stored by the CLI ${MARKER}`, value: { host: sshd.host, port: sshd.port, user: USER, host_key: [sshd.hostKeyFingerprint], private_key: key.privateKey, passphrase: PASSPHRASE } };
    expect(await stack.cli(['apply', '-f', '-'], JSON.stringify(document))).toMatchObject({ code: 0, stdout: `${viaCli}: created version 1\n` });
    const tested = await stack.cli(['test', viaCli]);
    expect(tested).toMatchObject({ code: 0, stdout: expect.stringMatching(/^ok: Logged in to 127\.0\.0\.1:\d+ as tc_ssh \(host key pinned\)/) });
    const introspected = await stack.cli(['introspect', viaCli]);
    expect(JSON.parse(introspected.stdout)).toMatchObject({ user: USER, home: sshd.home });
    const shown = await stack.cli(['get', viaCli, '-o', 'json']);
    expect(JSON.parse(shown.stdout)).toMatchObject({ description: `stored by the CLI ${MARKER}`, value: { private_key: '********', passphrase: '********' } });

    const viaApi = `ssh_api_${hex()}`;
    const created = await stack.apiCall('POST', '/v1/connectors', { ...document, name: viaApi, description: `stored by the API ${MARKER}`, value: { ...document.value, private_key: undefined, passphrase: undefined, password: PASSWORD } });
    expect(created.status).toBe(201);
    expect(created.text).toContain(MARKER);
    const apiTest = await stack.apiCall('POST', `/v1/connectors/${viaApi}/test`);
    expect(apiTest.json).toMatchObject({ ok: true });
    const apiIntrospect = await stack.apiCall('POST', `/v1/connectors/${viaApi}/introspect`);
    expect(apiIntrospect.json).toMatchObject({ user: USER, os: expect.stringContaining('Debian') });
    // Both types' JSON Schemas (what forms are built from) describe every input, and mark the secrets.
    for (const type of ['SSH', 'SFTP']) {
      const info = (await stack.apiCall('GET', `/v1/types/${type}`)).json as { sensitive: string[]; json_schema: { properties: Record<string, { description?: unknown; sensitive?: unknown }> } };
      expect(info.sensitive).toEqual(['password', 'private_key', 'passphrase', 'jump_host.password', 'jump_host.private_key', 'jump_host.passphrase']);
      for (const [field, property] of Object.entries(info.json_schema.properties)) expect([type, field, typeof property.description]).toEqual([type, field, 'string']);
      expect(info.json_schema.properties.private_key).toMatchObject({ sensitive: true, multiline: true });
    }
    for (const text of [created.text, apiTest.text, apiIntrospect.text, tested.stdout, introspected.stdout, shown.stdout]) {
      for (const secret of [PASSWORD, PASSPHRASE, key.privateKey]) expect(text).not.toContain(secret);
    }
  });

  test("an override of host or host_key does not take the connector's stored secrets along; one that brings its own goes", async () => {
    const { result } = await call(names.password, { command: 'true', host_key: strangerKey.fingerprint });
    expect(result.error).toMatchObject({ type: 'Connector.DestinationNotAllowed', nonRetryable: true });
    expect(result.error!.message).toContain('password');
    const elsewhere = await call(names.password, { command: 'true', host: 'localhost' });
    expect(elsewhere.result.error).toMatchObject({ type: 'Connector.DestinationNotAllowed' });
    // Bringing every secret the connector would withhold (here its key and passphrase), an override may go
    // elsewhere: it then sends the caller's own credentials, and only those.
    const own = await call(names.key, { command: 'id -un', host_key: [stack.sshd.hostKeyFingerprint, strangerKey.fingerprint], private_key: workflowKey.privateKey, passphrase: WORKFLOW_PASSPHRASE });
    expect(own.result.error).toBeUndefined();
    expect((own.result.details!.output as SshCommandResult).stdout).toBe(`${USER}\n`);
  });
});
