import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { startManagementApi, type RunningManagementApi } from '../../api/server';
import { smtpConnector, smtpDestination, smtpSchema, describeSmtpCall, type SmtpIntrospection, type SmtpSendResult } from '../../connectors/smtp';
import { sensitivePaths } from '../../connectors/sensitivity';
import { Keyring } from '../../core/keyring';
import { createConnectionRunner } from '../../core/runner';
import { ConnectorStore } from '../../core/store/connector-store';
import { PgDatabase } from '../../core/store/database';
import { startMailpit, type MailpitMessage, type MailpitServer } from '../../scripts/devstack/mailpit';
import { createScratchDatabase, type ScratchDatabase } from '../../scripts/devstack/postgres';
import { unusedLocalUrl } from '../fixtures/http-server';
import { startTcpProxy, type TcpProxy } from '../fixtures/tcp-proxy';
import { callSummary, historyText, startHarness, type Harness } from '../support/harness';
import { LOG_DIR, recordResponse, recordSecrets } from '../support/leak-sweep';
import { runProcess } from '../support/run-process';
import { waitFor } from '../support/wait';
import { invokeContext } from '../support/connector-calls';

const hex = () => randomBytes(6).toString('hex');
const USER = 'mailer';
const PASSWORD = `smtp-pw-${hex()}`;
const WRONG_PASSWORD = `smtp-wrong-${hex()}`;
const RW_TOKEN = `rw-smtp-${hex()}${hex()}`;
/** The password as it travels in AUTH PLAIN and AUTH LOGIN: found there, and nowhere else. */
const PASSWORD_ON_THE_WIRE = [Buffer.from(`\0${USER}\0${PASSWORD}`).toString('base64'), Buffer.from(PASSWORD).toString('base64')];
recordSecrets('the SMTP passwords of smtp.test.ts', [PASSWORD, WRONG_PASSWORD, RW_TOKEN, ...PASSWORD_ON_THE_WIRE]);

const BIN = path.resolve(__dirname, '..', '..', 'cli', 'bin.js');
const keyOf = (workflowId: string) => `tc-${createHash('sha256').update(workflowId).digest('hex').slice(0, 32)}`;
const addresses = (list: { Address: string }[]) => list.map((a) => a.Address).sort();

function mailpitLog(name: string): (line: string) => void {
  mkdirSync(LOG_DIR, { recursive: true });
  const stream = createWriteStream(path.join(LOG_DIR, `mailpit-${name}.log`), { flags: 'w' });
  return (line) => stream.write(`${line}\n`);
}

describe('SMTP connector (fast: schema, destination, summary)', () => {
  test('the password is its only secret, marked in the schema', () => {
    expect(sensitivePaths(smtpSchema)).toEqual(['auth.password']);
    expect(smtpConnector.sensitive).toEqual(['auth.password']);
  });

  test('the JSON Schema forms and `connectors types` show describes every input, down to each field of an attachment', () => {
    type Node = { properties?: Record<string, Node>; anyOf?: Node[]; oneOf?: Node[]; items?: Node; description?: string };
    const found: Record<string, string | undefined> = {};
    const walk = (node: Node | undefined, at: string) => {
      if (!node || typeof node !== 'object') return;
      for (const [key, child] of Object.entries(node.properties ?? {})) {
        const path = at ? `${at}.${key}` : key;
        found[path] ??= child.description;
        walk(child, path);
      }
      for (const variant of [...(node.anyOf ?? []), ...(node.oneOf ?? [])]) walk(variant, at);
      if (node.items) walk(node.items, `${at}[]`);
    };
    walk(z.toJSONSchema(smtpSchema, { io: 'input', unrepresentable: 'any' }) as Node, '');
    expect(Object.keys(found)).toEqual(expect.arrayContaining(['host', 'security', 'tls.ca', 'auth.password', 'allowed_recipients', 'to', 'bcc', 'attachments[].encoding', 'attachments[].content_id']));
    expect(Object.entries(found).filter(([, d]) => typeof d !== 'string' || d.length < 10).map(([path]) => path)).toEqual([]);
  });

  test('the destination is host:port with TLS facts in the SQL style; plain SMTP is the bare address', () => {
    expect(smtpDestination({ host: 'Mail.Example.com' })).toBe('mail.example.com:587 starttls');
    expect(smtpDestination({ host: 'mail.example.com', security: 'tls' })).toBe('mail.example.com:465 tls');
    expect(smtpDestination({ host: 'localhost', security: 'plain' })).toBe('localhost:25');
    expect(smtpDestination({ host: 'mail.example.com', port: 2525, tls: { reject_unauthorized: false } })).toBe('mail.example.com:2525 starttls=no-verify');
    const ca = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    const pin = createHash('sha256').update(ca).digest('hex').slice(0, 16);
    expect(smtpDestination({ host: 'mail.example.com', security: 'tls', tls: { ca } })).toBe(`mail.example.com:465 tls ca=sha256:${pin}`);
    expect(smtpDestination({ port: 25 })).toBeUndefined();
  });

  test('the summary counts recipients and attachments, and names no address and no subject', () => {
    const summary = describeSmtpCall({ to: ['a@example.com', 'b@example.com'], cc: 'c@example.com', bcc: ['d@example.com'], subject: 'Salary of Ada', attachments: [{}] });
    expect(summary).toBe('send to 4 recipients, 1 attachment');
    expect(describeSmtpCall({ to: 'a@example.com' })).toBe('send to 1 recipient');
  });

  test('the schema refuses what it cannot send, naming the field', () => {
    const issues = (inputs: Record<string, unknown>) => {
      const parsed = smtpSchema.safeParse({ host: 'mail.example.com', ...inputs });
      return parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    };
    expect(issues({ security: 'plain', tls: { reject_unauthorized: false } })).toEqual(['tls: has no effect with security plain, which sends without TLS']);
    expect(issues({ to: ['ada@example.com', 'a@example.com, b@example.com'] })).toEqual(['to.1: must be one mail address per entry, e.g. ada@example.com or Ada <ada@example.com>']);
    expect(issues({ to: 'x@example.com\r\nBcc: evil@example.com' })[0]).toMatch(/^to: /);
    expect(issues({ attachments: [{ filename: 'a.bin', content: 'not base64!', encoding: 'base64' }] })).toEqual(['attachments.0.content: is not valid base64']);
    const big = Buffer.alloc(1024 * 1024 + 1).toString('base64');
    expect(issues({ attachments: [{ filename: 'big.bin', content: big, encoding: 'base64' }] })).toEqual(['attachments: hold 1048577 bytes in all; at most 1048576 (1 MiB) per message']);
    expect(issues({ attachments: [{ filename: 'a.txt', content: 'x', path: '/etc/passwd' }] })[0]).toMatch(/^attachments\.0: Unrecognized key/);
    expect(issues({ port: 0 })[0]).toMatch(/^port: /);
  });
});

// All real: Mailpit built from its Go module, Temporal, PostgreSQL, the `connectors` binary and the HTTP API.
describe('SMTP connector against Mailpit', () => {
  let mailpit: MailpitServer;
  let relay: TcpProxy;
  /** In front of mail_wrong, to count its connections: each attempt opens one. */
  let wrongGate: TcpProxy;
  let db: ScratchDatabase;
  let h: Harness;
  let api: RunningManagementApi;
  const keyringEntry = Keyring.generateEntry('k1');
  /** Everything clients sent through the relay proxy, and a hook the retry test sets. */
  let wire = '';
  let onWire: ((sofar: string) => void) | undefined;

  const tlsProfile = () => ({
    host: mailpit.host,
    port: mailpit.smtpPort,
    security: 'starttls',
    tls: { ca: mailpit.certificatePem },
    auth: { user: USER, password: PASSWORD },
    from: 'Billing <billing@example.com>',
    allowed_recipients: ['*@example.com'],
  });

  beforeAll(async () => {
    mailpit = await startMailpit({ users: { [USER]: PASSWORD }, allowInsecureAuth: true, chaos: true, onLine: mailpitLog('smtp-test') });
    relay = await startTcpProxy(mailpit.smtpPort, {
      onClientData: (chunk) => {
        wire += chunk.toString('latin1');
        onWire?.(wire);
      },
    });
    wrongGate = await startTcpProxy(mailpit.smtpPort);
    db = await createScratchDatabase('tc_smtp');
    const store = new ConnectorStore(new PgDatabase({ connectionString: db.url }));
    await store.migrate();
    await store.close();
    h = await startHarness({ databaseUrl: db.url, keyring: Keyring.parse(keyringEntry) });
    await h.service.apply({ name: 'mail_tls', type: 'SMTP', value: tlsProfile(), locked: ['allowed_recipients', 'from'] });
    // Plain SMTP through the proxy: the tests see the bytes, and can break the connection at a chosen point.
    await h.service.apply({
      name: 'mail_relay',
      type: 'SMTP',
      value: { host: '127.0.0.1', port: relay.port, security: 'plain', auth: { user: USER, password: PASSWORD }, from: 'relay@example.com' },
    });
    await h.service.apply({ name: 'mail_wrong', type: 'SMTP', value: { ...tlsProfile(), port: wrongGate.port, auth: { user: USER, password: WRONG_PASSWORD } } });
    api = await startManagementApi({ service: h.service, runner: createConnectionRunner({ service: h.service, vault: h.vault }), tokens: { readWrite: [RW_TOKEN], readOnly: [] }, port: 0 });
  }, 120_000);

  afterAll(async () => {
    await api?.close();
    await h?.shutdown();
    await db?.drop();
    await relay?.close();
    await wrongGate?.close();
    await mailpit?.stop();
  });

  beforeEach(async () => {
    await mailpit.deleteAll();
    await mailpit.setChaos({});
    onWire = undefined;
  });

  async function cli(args: string[]) {
    return runProcess(process.execPath, [BIN, ...args], {
      env: { ...process.env, DATABASE_URL: db.url, TC_KEYRING: keyringEntry, TC_KEYRING_FILE: '', VAULT_ADDR: '' },
      timeoutMs: 60_000,
      label: `connectors ${args.join(' ')}`,
    });
  }

  async function apiPost(route: string): Promise<{ status: number; json: Record<string, unknown>; text: string }> {
    const res = await fetch(`${api.url}${route}`, { method: 'POST', headers: { authorization: `Bearer ${RW_TOKEN}` } });
    const text = await res.text();
    recordResponse(`management API POST ${route}`, text);
    return { status: res.status, json: JSON.parse(text) as Record<string, unknown>, text };
  }

  test('a message sent through connect() arrives with its to and cc in the headers, bcc only in the envelope, the bodies and attachments', async () => {
    const marker = `body-marker-${hex()}`;
    const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
    const { result, workflowId } = await h.call('mail_tls', {
      to: ['ada@example.com', 'Bob <bob@example.com>'],
      cc: 'carol@example.com',
      bcc: ['dave@example.com'],
      reply_to: 'help@example.com',
      subject: 'Invoice 42 – überfällig',
      text: `Plain ${marker}`,
      html: `<p>HTML ${marker}</p><img src="cid:logo">`,
      attachments: [
        { filename: 'invoice-42.csv', content: 'id,amount\n42,12.50\n', content_type: 'text/csv' },
        { filename: 'logo.png', content: png.toString('base64'), encoding: 'base64', content_type: 'image/png', content_id: 'logo' },
      ],
    });
    expect(result.error).toBeUndefined();
    const output = result.details!.output as SmtpSendResult;
    expect(output.message_id).toBe(`<${keyOf(result.workflowId!)}@example.com>`);
    expect(output.accepted.sort()).toEqual(['ada@example.com', 'bob@example.com', 'carol@example.com', 'dave@example.com']);
    expect(output.rejected).toEqual([]);

    const [message] = await mailpit.messages();
    expect(message.headers['Message-Id']).toEqual([output.message_id]);
    expect(message.From).toEqual({ Name: 'Billing', Address: 'billing@example.com' });
    expect(addresses(message.To)).toEqual(['ada@example.com', 'bob@example.com']);
    expect(addresses(message.Cc)).toEqual(['carol@example.com']);
    // Mailpit shows the envelope recipients that are in no header as Bcc (and writes a Bcc header into
    // its copy); that the message itself carries none is checked on the wire, in the last test.
    expect(addresses(message.Bcc)).toEqual(['dave@example.com']);
    expect(addresses(message.ReplyTo)).toEqual(['help@example.com']);
    expect(message.Subject).toBe('Invoice 42 – überfällig');
    expect(message.Text.trim()).toBe(`Plain ${marker}`);
    expect(message.HTML).toContain(`<p>HTML ${marker}</p>`);
    expect(message.Attachments.map((a) => [a.FileName, a.ContentType])).toEqual([['invoice-42.csv', 'text/csv']]);
    expect((await mailpit.part(message.ID, message.Attachments[0].PartID)).toString()).toBe('id,amount\n42,12.50\n');
    expect(message.Inline.map((a) => [a.FileName, a.ContentID])).toEqual([['logo.png', 'logo']]);
    expect(await mailpit.part(message.ID, message.Inline[0].PartID)).toEqual(png);

    // What the Web UI shows: counts, no address, no subject. The marker proves the history text is read decoded.
    expect(await callSummary(h.client, result.workflowId!)).toBe('SMTP mail_tls send to 4 recipients, 2 attachments');
    for (const id of [workflowId, result.workflowId!]) {
      const text = await historyText(h.client, id);
      if (id === workflowId) expect(text).toContain(marker);
      for (const secret of [PASSWORD, ...PASSWORD_ON_THE_WIRE]) expect(text).not.toContain(secret);
    }
    expect(result.details!.inputs).toMatchObject({ auth: { user: USER, password: '********' } });
  });

  test('a retried attempt sends the same Message-ID: the connection breaks after the final dot reached the server and before its 250 reached the client', async () => {
    let armed = true;
    onWire = (sofar) => {
      // The end of the message: the server stores it and answers 250, which the proxy keeps from the client.
      if (armed && sofar.endsWith('\r\n.\r\n')) {
        armed = false;
        relay.holdResponses();
        void waitFor(() => relay.heldBytes() > 0, 10_000).then(() => {
          relay.forwardTo(mailpit.smtpPort); // drops every open connection, the held 250 with it
          relay.releaseResponses();
        });
      }
    };
    const { result } = await h.call('mail_relay', { to: 'ops@example.com', subject: 'Deploy finished', text: 'at least once' });
    expect(result.error).toBeUndefined();
    expect(result.details!.attempt).toBe(2);
    const output = result.details!.output as SmtpSendResult;
    expect(output.message_id).toBe(`<${keyOf(result.workflowId!)}@example.com>`);

    const copies: MailpitMessage[] = await mailpit.messages();
    expect(copies).toHaveLength(2);
    expect(copies.map((m) => m.headers['Message-Id'][0])).toEqual([output.message_id, output.message_id]);
    expect(copies.map((m) => [m.Subject, addresses(m.To)])).toEqual([
      ['Deploy finished', ['ops@example.com']],
      ['Deploy finished', ['ops@example.com']],
    ]);
    // A connection of its own gets a Message-ID of its own.
    const again = await h.call('mail_relay', { to: 'ops@example.com', subject: 'Deploy finished', text: 'at least once' });
    expect((again.result.details!.output as SmtpSendResult).message_id).not.toBe(output.message_id);
  });

  test('a recipient outside allowed_recipients is refused naming the field and index, and nothing is sent; the list itself is locked', async () => {
    const refused = await h.call('mail_tls', { to: ['ada@example.com', 'mallory@evil.example'], subject: 'x', text: 'x' });
    expect(refused.result.error).toMatchObject({ type: 'Connector.InvalidInput', nonRetryable: true });
    expect(refused.result.error!.message).toContain('to[1] (mallory@evil.example) is not among the connector');
    const bcc = await h.call('mail_tls', { to: 'ada@example.com', bcc: 'Mallory <MALLORY@evil.example>', subject: 'x', text: 'x' });
    expect(bcc.result.error!.message).toContain('bcc (mallory@evil.example)');
    // `*` stops at `@`: a subdomain of example.com is another domain.
    const sub = await h.call('mail_tls', { to: 'ada@mail.example.com', subject: 'x', text: 'x' });
    expect(sub.result.error!.message).toContain('to (ada@mail.example.com)');
    const widened = await h.call('mail_tls', { to: 'mallory@evil.example', allowed_recipients: ['*@*'], subject: 'x', text: 'x' });
    expect(widened.result.error).toMatchObject({ type: 'Connector.LockedField', nonRetryable: true });
    expect(await mailpit.messages()).toEqual([]);
  });

  test('allowed_recipients is matched against the envelope as sent: a Unicode look-alike that lower-cases into an allowed domain is refused, and nothing is sent', async () => {
    // KELVIN SIGN lower-cases to a plain `k`, yet nodemailer sends the domain as its own punycode: another domain.
    const inputs = smtpSchema.parse({ ...tlsProfile(), allowed_recipients: ['*@bank.example'], to: 'mallory@ban\u212A.example', subject: 'x', text: 'x' });
    const outcome = await smtpConnector.invoke(inputs, invokeContext()).catch((err: unknown) => err);
    const sent = await mailpit.messages();
    expect(sent.flatMap((m) => m.To.map((a) => a.Address))).toEqual([]);
    expect(outcome).toMatchObject({ type: 'Connector.InvalidInput', message: expect.stringContaining('is not among the connector') });
    // An allowed address in capitals still passes.
    const ok = (await smtpConnector.invoke(smtpSchema.parse({ ...tlsProfile(), to: 'Ada <ADA@Example.COM>', subject: 'x', text: 'x' }), invokeContext())) as SmtpSendResult;
    expect(ok.accepted).toEqual(['ADA@example.com']);
  });

  test('a wrong password fails at once, non-retryably, with Connector.External.Auth naming the connector', async () => {
    const before = wrongGate.accepted();
    const { result } = await h.call('mail_wrong', { to: 'ada@example.com', subject: 'x', text: 'x' });
    expect(result.error).toMatchObject({ type: 'Connector.External.Auth', nonRetryable: true });
    expect(result.error!.message).toMatch(/^connector mail_wrong: SMTP 127\.0\.0\.1:\d+ refused the login of user mailer \(535 /);
    expect(result.error!.message).not.toContain(WRONG_PASSWORD);
    // One attempt of the three the call may make: one connection.
    expect(wrongGate.accepted() - before).toBe(1);
    expect(await historyText(h.client, result.workflowId!)).not.toContain(WRONG_PASSWORD);
    expect(await mailpit.messages()).toEqual([]);
  });

  test('an unreachable server is a retryable Connector.External.Network failure, retried until the attempts run out', async () => {
    const closed = new URL(await unusedLocalUrl()).port;
    const refused = await h.call({ type: 'SMTP', host: '127.0.0.1', port: Number(closed), security: 'plain', from: 'a@example.com', to: 'b@example.com' });
    expect(refused.result.error).toMatchObject({ type: 'Connector.External.Network', nonRetryable: false });
    expect(refused.result.error!.message).toContain('ECONNREFUSED');
    // A server that takes the connection and drops it: each attempt reaches it, three in all.
    const dropping = await startTcpProxy(undefined);
    try {
      const dropped = await h.call({ type: 'SMTP', host: '127.0.0.1', port: dropping.port, security: 'plain', from: 'a@example.com', to: 'b@example.com' });
      expect(dropped.result.error).toMatchObject({ type: 'Connector.External.Network', nonRetryable: false });
      expect(dropping.accepted()).toBe(3);
    } finally {
      await dropping.close();
    }
  });

  test("a 4xx answer is retried and a 5xx is not: Mailpit's chaos refuses every recipient", async () => {
    await mailpit.setChaos({ Recipient: { ErrorCode: 451, Probability: 100 } });
    const temporary = await h.call('mail_tls', { to: 'ada@example.com', subject: 'x', text: 'x' });
    expect(temporary.result.error).toMatchObject({ type: 'Connector.External.Error', nonRetryable: false });
    expect(temporary.result.error!.message).toMatch(/answered RCPT TO with 451 .*retried/);
    await mailpit.setChaos({ Recipient: { ErrorCode: 550, Probability: 100 } });
    const permanent = await h.call('mail_tls', { to: 'ada@example.com', subject: 'x', text: 'x' });
    expect(permanent.result.error).toMatchObject({ type: 'Connector.External.Error', nonRetryable: true });
    expect(permanent.result.error!.message).toMatch(/answered RCPT TO with 550 /);
    expect(await mailpit.messages()).toEqual([]);
  });

  test('an override that moves the call to another server or stops verifying TLS does not get the stored password', async () => {
    const moved = await h.call('mail_tls', { port: relay.port, to: 'ada@example.com', subject: 'x', text: 'x' });
    expect(moved.result.error).toMatchObject({ type: 'Connector.DestinationNotAllowed', nonRetryable: true });
    const unverified = await h.call('mail_tls', { tls: { reject_unauthorized: false }, to: 'ada@example.com', subject: 'x', text: 'x' });
    expect(unverified.result.error).toMatchObject({ type: 'Connector.DestinationNotAllowed', nonRetryable: true });
    expect(unverified.result.error!.message).toContain('starttls=no-verify');
    expect(await mailpit.messages()).toEqual([]);
  });

  test('test and introspect through a workflow, the CLI and the HTTP API: the login, STARTTLS and what the server offers', async () => {
    const options = { taskQueue: h.connectorQueue };
    const tested = await h.run<{ ok: boolean; message: string }>('testConnector', { connector: 'mail_tls', options });
    expect(tested.result).toMatchObject({ ok: true, message: expect.stringMatching(/accepted the login of user mailer over STARTTLS/) });
    const described = await h.run<SmtpIntrospection>('introspect', { connector: 'mail_tls', options });
    expect(described.result).toMatchObject({ security: 'starttls', encrypted: true, auth_mechanisms: expect.arrayContaining(['PLAIN', 'LOGIN']) });
    expect(described.result.tls_version).toMatch(/^TLSv1\.[23]$/);
    expect(described.result.extensions).toEqual(expect.arrayContaining(['ENHANCEDSTATUSCODES']));

    const cliTest = await cli(['test', 'mail_tls']);
    expect(cliTest).toMatchObject({ code: 0, stdout: expect.stringMatching(/^ok: SMTP 127\.0\.0\.1:\d+ accepted the login of user mailer over STARTTLS in \d+ ms\n$/) });
    const cliWrong = await cli(['test', 'mail_wrong']);
    expect(cliWrong.code).toBe(1);
    expect(cliWrong.stdout).toMatch(/^FAILED: SMTP 127\.0\.0\.1:\d+ refused the login of user mailer \(535 .*check the user and password\.\n$/);
    const cliIntrospect = await cli(['introspect', 'mail_tls']);
    expect(cliIntrospect.code).toBe(0);
    expect(JSON.parse(cliIntrospect.stdout)).toMatchObject({ security: 'starttls', encrypted: true, auth_mechanisms: expect.arrayContaining(['PLAIN']) });

    const apiTest = await apiPost('/v1/connectors/mail_tls/test');
    expect(apiTest.status).toBe(200);
    expect(JSON.stringify(apiTest.json)).toMatch(/accepted the login of user mailer over STARTTLS/);
    const apiIntrospect = await apiPost('/v1/connectors/mail_tls/introspect');
    expect(apiIntrospect.status).toBe(200);
    expect(apiIntrospect.text).toContain('"auth_mechanisms"');
    for (const text of [cliTest.stdout, cliWrong.stdout, cliIntrospect.stdout, apiTest.text, apiIntrospect.text]) {
      for (const secret of [PASSWORD, WRONG_PASSWORD, ...PASSWORD_ON_THE_WIRE]) expect(text).not.toContain(secret);
    }
    expect(await mailpit.messages()).toEqual([]);
  });

  test('a server that stays silent fails with a retryable Connector.External.Timeout naming the timeouts', async () => {
    const silent = await startTcpProxy(mailpit.smtpPort);
    silent.holdResponses(); // the server's greeting never arrives
    try {
      const inputs = smtpSchema.parse({ host: '127.0.0.1', port: silent.port, security: 'plain', from: 'a@example.com', to: 'b@example.com', connect_timeout: '300ms' });
      const started = Date.now();
      const failure = await smtpConnector.invoke(inputs, { signal: new AbortController().signal, heartbeat: () => undefined }).then(
        () => undefined,
        (err: unknown) => err as { type?: string; nonRetryable?: boolean; message: string },
      );
      expect(failure).toMatchObject({ type: 'Connector.External.Timeout', nonRetryable: false });
      expect(failure!.message).toMatch(/did not answer in time \(connect_timeout 300 ms, timeout 60000 ms\)/);
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await silent.close();
    }
  });

  test('cancelling the activity closes the connection at once and rejects with the reason, whatever the server does', async () => {
    const silent = await startTcpProxy(mailpit.smtpPort);
    silent.holdResponses(); // the server's greeting never arrives
    try {
      const controller = new AbortController();
      const inputs = smtpSchema.parse({ host: '127.0.0.1', port: silent.port, security: 'plain', from: 'a@example.com', to: 'b@example.com', timeout: '1m' });
      const started = Date.now();
      const call = smtpConnector.invoke(inputs, { signal: controller.signal, heartbeat: () => undefined });
      await waitFor(() => silent.accepted() === 1);
      const reason = new Error('activity cancelled');
      controller.abort(reason);
      await expect(call).rejects.toBe(reason);
      expect(Date.now() - started).toBeLessThan(5_000);
      await waitFor(() => silent.heldClose(), 5_000);
    } finally {
      await silent.close();
    }
  });

  test('implicit TLS (security tls) sends to an SMTPS port whose certificate the connector pins', async () => {
    const smtps = await startMailpit({ tls: 'implicit', users: { [USER]: PASSWORD }, onLine: mailpitLog('smtp-test-implicit') });
    try {
      // Stored, not inline: an inline connector's password is the workflow's own data, in its history.
      const value = { host: smtps.host, port: smtps.smtpPort, security: 'tls', tls: { ca: smtps.certificatePem }, auth: { user: USER, password: PASSWORD }, from: 'a@example.com' };
      await h.service.apply({ name: 'mail_smtps', type: 'SMTP', value });
      const { result } = await h.call('mail_smtps', { to: 'b@example.com', subject: 'over SMTPS', text: 'x' });
      expect(result.error).toBeUndefined();
      expect((await smtps.messages()).map((m) => m.Subject)).toEqual(['over SMTPS']);
      // Another server's certificate is not this one's: refused before any login.
      await h.service.apply({ name: 'mail_smtps_other_ca', type: 'SMTP', value: { ...value, tls: { ca: mailpit.certificatePem } } });
      const { result: wrongCa } = await h.call('mail_smtps_other_ca', { to: 'b@example.com' });
      expect(wrongCa.error).toMatchObject({ type: 'Connector.External.Error', nonRetryable: true });
      expect(wrongCa.error!.message).toMatch(/TLS could not be set up, so nothing was sent: the server certificate/);
    } finally {
      await smtps.stop();
    }
  });

  test('the password travels only in the AUTH exchange: found there on the wire, and in no history, result, CLI or API output', async () => {
    wire = '';
    const { result, workflowId } = await h.call('mail_relay', { to: 'ops@example.com', bcc: 'audit@example.com', subject: 'wire', text: 'x' });
    expect(result.error).toBeUndefined();
    // Bcc is in the envelope and not in the message: the others never see it.
    expect(wire).toContain('RCPT TO:<audit@example.com>');
    const data = wire.slice(wire.indexOf('\r\nDATA\r\n'));
    expect(data).toContain('\r\nTo: ops@example.com\r\n');
    expect(data).not.toMatch(/^Bcc:/im);
    // Where it must be: nodemailer logs in with AUTH PLAIN (or LOGIN) in base64, readable on plain SMTP.
    expect(wire).toMatch(/\r\nAUTH (PLAIN|LOGIN)/);
    expect(PASSWORD_ON_THE_WIRE.some((form) => wire.includes(form))).toBe(true);
    const authLine = wire.split('\r\n').findIndex((line) => line.startsWith('AUTH '));
    expect(wire.split('\r\n').slice(authLine + 3).join('\n')).not.toMatch(new RegExp(PASSWORD_ON_THE_WIRE.join('|')));
    // Where it must not be.
    const everything = [await historyText(h.client, workflowId), await historyText(h.client, result.workflowId!), JSON.stringify(result)];
    const apiTest = await apiPost('/v1/connectors/mail_relay/test');
    const cliTest = await cli(['test', 'mail_relay']);
    everything.push(apiTest.text, cliTest.stdout, cliTest.stderr);
    expect(apiTest.json).toMatchObject({ ok: true });
    for (const text of everything) for (const secret of [PASSWORD, ...PASSWORD_ON_THE_WIRE]) expect(text).not.toContain(secret);
    // And the message arrived, to ops and, in the envelope only, to audit.
    const [message] = await mailpit.messages();
    expect([addresses(message.To), addresses(message.Bcc)]).toEqual([['ops@example.com'], ['audit@example.com']]);
  });
});
