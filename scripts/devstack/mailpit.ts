import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { resolveBinary, type BinarySpec } from './binaries';
import { freePort, startServerProcess } from './process';

/**
 * Mailpit, a real SMTP server that keeps what it receives and shows it through an HTTP API, built
 * from its published Go module. Pinned to v1.27.11: the newest release the Go module proxy serves,
 * v1.33.1, needs Go 1.26, while the rest of the stack builds with Go 1.25.
 */
export const MAILPIT_SERVER: BinarySpec = {
  displayName: 'Mailpit mail server',
  envVar: 'MAILPIT_BIN',
  command: 'mailpit',
  version: '1.27.11',
  goToolsModule: 'scripts/go-tools/mailpit',
  goPackage: 'github.com/axllent/mailpit',
};

/** How the SMTP port of a {@link startMailpit} server speaks TLS. */
export type MailpitTls =
  /** Plain SMTP that offers STARTTLS (and, with `allowInsecureAuth`, also takes a login without it). */
  | 'starttls'
  /** TLS from the first byte (SMTPS, as on port 465). */
  | 'implicit';

/** Options of {@link startMailpit}. */
export interface MailpitOptions {
  /** Users and their passwords; SMTP AUTH accepts only these. Default: `{ mailer: 'mailer-password' }`. */
  users?: Record<string, string>;
  /** How the SMTP port speaks TLS. Default: `starttls`. */
  tls?: MailpitTls;
  /**
   * With `tls: 'starttls'`: also accept a login over plain SMTP (Mailpit's `--smtp-auth-allow-insecure`),
   * for connectors that say `security: plain`. Default: false (a login needs STARTTLS first).
   */
  allowInsecureAuth?: boolean;
  /** Enables Mailpit's chaos triggers (see {@link MailpitServer.setChaos}). Default: false. */
  chaos?: boolean;
  /** How long to wait for the server, in milliseconds. Default: 30000. */
  startupTimeoutMs?: number;
  /** Receives the server's log lines. Default: kept in memory for error messages only. */
  onLine?: (line: string) => void;
}

/** A mail address as Mailpit's API gives it. */
export interface MailpitAddress {
  Name: string;
  Address: string;
}

/** One received message, as Mailpit's API gives it (`GET /api/v1/message/{ID}`), with its headers. */
export interface MailpitMessage {
  ID: string;
  MessageID: string;
  From: MailpitAddress;
  To: MailpitAddress[];
  Cc: MailpitAddress[];
  /** Envelope recipients that are in neither To nor Cc. */
  Bcc: MailpitAddress[];
  ReplyTo: MailpitAddress[];
  Subject: string;
  Text: string;
  HTML: string;
  Attachments: { PartID: string; FileName: string; ContentType: string; ContentID: string; Size: number }[];
  Inline: { PartID: string; FileName: string; ContentType: string; ContentID: string; Size: number }[];
  /** Header names as Mailpit spells them (`Message-Id`), each with its values. */
  headers: Record<string, string[]>;
}

/** Chaos settings: each makes Mailpit answer that step with `ErrorCode` in `Probability` percent of cases. */
export interface MailpitChaos {
  Sender?: { ErrorCode: number; Probability: number };
  Recipient?: { ErrorCode: number; Probability: number };
  Authentication?: { ErrorCode: number; Probability: number };
}

/** A running Mailpit with its SMTP port, its HTTP API and the certificate it serves. */
export interface MailpitServer {
  /** Always `127.0.0.1`, which the certificate names. */
  host: string;
  smtpPort: number;
  /** Base URL of the HTTP API and web UI, `http://127.0.0.1:<port>`. */
  apiUrl: string;
  /** The self-signed certificate of the SMTP port (PEM): the CA a connector pins in `tls.ca`. */
  certificatePem: string;
  source: string;
  /** Every message received so far, oldest first, with its headers. */
  messages(): Promise<MailpitMessage[]>;
  /** Body of one attachment or inline part. */
  part(id: string, partId: string): Promise<Buffer>;
  /** Deletes every message. */
  deleteAll(): Promise<void>;
  /** Sets the chaos triggers (the server must run with `chaos: true`); `{}` turns them off. */
  setChaos(chaos: MailpitChaos): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A throwaway self-signed certificate for 127.0.0.1 and localhost, made with `openssl` into `dir`.
 * It is its own CA, so a client that pins it verifies the server without trusting anything else.
 */
export async function selfSignedCertificate(dir: string): Promise<{ certFile: string; keyFile: string; pem: string }> {
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2'];
  args.push('-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', keyFile, '-out', certFile);
  await run('openssl', args);
  return { certFile, keyFile, pem: await readFile(certFile, 'utf8') };
}

function run(command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', (err) => reject(new Error(`${command} could not be started (${err.message}); it is needed to make a test certificate`)));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${command} ${args[0]} exited with ${code}: ${stderr.trim()}`))));
  });
}

/**
 * An htpasswd line Mailpit's `--smtp-auth-file` reads: `{SHA}` and the base64 of the password's
 * SHA-1, so the file holds no password in clear (the format is the server's; this is a test server).
 */
function htpasswdLine(user: string, password: string): string {
  return `${user}:{SHA}${createHash('sha1').update(password).digest('base64')}`;
}

/**
 * Starts Mailpit on free loopback ports (SMTP and HTTP API), with SMTP AUTH for `users` only and TLS
 * with a fresh self-signed certificate, finding or building the binary first. Messages live in a
 * temporary database of its own, removed when it stops.
 */
export async function startMailpit(options: MailpitOptions = {}): Promise<MailpitServer> {
  const bin = await resolveBinary(MAILPIT_SERVER);
  const dir = await mkdtemp(path.join(tmpdir(), 'tc-mailpit-'));
  try {
    const cert = await selfSignedCertificate(dir);
    const authFile = path.join(dir, 'smtp-users');
    const users = options.users ?? { mailer: 'mailer-password' };
    await writeFile(authFile, `${Object.entries(users).map(([user, password]) => htpasswdLine(user, password)).join('\n')}\n`, { mode: 0o600 });
    const [smtpPort, httpPort] = [await freePort(), await freePort()];
    const apiUrl = `http://127.0.0.1:${httpPort}`;
    const tls = options.tls ?? 'starttls';
    const args = [
      `--smtp=127.0.0.1:${smtpPort}`,
      `--listen=127.0.0.1:${httpPort}`,
      `--database=${path.join(dir, 'mailpit.db')}`,
      `--smtp-auth-file=${authFile}`,
      `--smtp-tls-cert=${cert.certFile}`,
      `--smtp-tls-key=${cert.keyFile}`,
      // Duplicates are what the retry tests look for: keep every copy.
      '--max=0',
      '--smtp-disable-rdns',
      '--disable-version-check',
    ];
    if (tls === 'implicit') args.push('--smtp-require-tls');
    if (tls === 'starttls' && options.allowInsecureAuth) args.push('--smtp-auth-allow-insecure');
    if (options.chaos) args.push('--enable-chaos');
    const server = await startServerProcess({
      displayName: 'Mailpit',
      executable: bin.path,
      args,
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
      startupTimeoutMs: options.startupTimeoutMs ?? 30_000,
      onLine: options.onLine,
      isReady: async () => {
        const res = await fetch(`${apiUrl}/api/v1/info`, { signal: AbortSignal.timeout(2_000) });
        await res.arrayBuffer();
        return res.status === 200;
      },
    });

    const api = async (method: string, route: string, body?: unknown): Promise<Response> => {
      const res = await fetch(`${apiUrl}/api/v1/${route}`, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      });
      if (!res.ok) throw new Error(`Mailpit ${method} /api/v1/${route} answered ${res.status}: ${await res.text()}`);
      return res;
    };
    const json = async <T>(route: string): Promise<T> => (await (await api('GET', route)).json()) as T;

    return {
      host: '127.0.0.1',
      smtpPort,
      apiUrl,
      certificatePem: cert.pem,
      source: bin.source,
      async messages() {
        // The list is newest first and pages by 50; the tests keep far fewer.
        const list = await json<{ messages: { ID: string }[] }>('messages?limit=1000');
        const ids = list.messages.map((m) => m.ID).reverse();
        return Promise.all(
          ids.map(async (id) => ({ ...(await json<Omit<MailpitMessage, 'headers'>>(`message/${id}`)), headers: await json<Record<string, string[]>>(`message/${id}/headers`) })),
        );
      },
      async part(id, partId) {
        return Buffer.from(await (await api('GET', `message/${id}/part/${partId}`)).arrayBuffer());
      },
      async deleteAll() {
        await api('DELETE', 'messages');
      },
      async setChaos(chaos) {
        const off = { ErrorCode: 451, Probability: 0 };
        await api('PUT', 'chaos', { Sender: off, Recipient: off, Authentication: { ErrorCode: 535, Probability: 0 }, ...chaos });
      },
      async stop() {
        await server.stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
