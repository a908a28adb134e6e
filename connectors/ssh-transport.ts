/**
 * What the SSH and SFTP connector types share: the connection inputs (host, port, user, the pinned
 * host key, password or private key), the destination their secrets are bound to, connecting with
 * ssh2 under the host-key rule, pooled connections, and the failures of a connection.
 *
 * The host-key rule: a connector calls only a server whose host key it pins (`host_key`, OpenSSH's
 * `SHA256:…` fingerprint form). ssh2 asks `hostVerifier` during key exchange, before the client
 * authenticates, so an unknown or changed key is refused before any password or key signature is
 * sent. There is no trust on first use: without `host_key` a call is refused, and only a connection
 * test connects, to report the key the server offered, so that the operator can check and pin it.
 */
import { createHash } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { Client, utils, type AuthenticationType, type ClientChannel, type ConnectConfig } from 'ssh2';
import { z } from 'zod';
import { durationSchema, parseDurationMs } from './durations';
import { FailureType, describeNetworkError, errorCode, networkFailure, permanentFailure, transientFailure } from './errors';
import { PoolManager, type PoolOptions } from './pools';
import { multiline, sensitive } from './sensitivity';
import type { InvokeContext } from './types';

/** How long a connection may take, TCP, key exchange and authentication together, when the inputs give none: 10 s. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** Most host keys one connector may pin. */
export const MAX_PINNED_HOST_KEYS = 10;

/** OpenSSH's fingerprint form, as `ssh-keygen -lf` prints it: `SHA256:` and 43 characters of unpadded Base64. */
const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}$/;
const fingerprintSchema = z
  .string()
  .trim()
  .regex(FINGERPRINT, { message: "must be an OpenSSH SHA256 fingerprint such as 'SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s' (ssh-keygen -lf <host key>.pub)" });

/** The connection inputs of SSH and SFTP. Each field says what it means in its description. */
export const sshConnectionFields = {
  host: z.string().trim().min(1).meta({ description: 'Host name or IP address of the SSH server. Required.', examples: ['ssh.example.com', '10.0.0.7'] }),
  port: z.number().int().min(1).max(65_535).default(22).describe('TCP port of the SSH server, 1 to 65535. Default 22.'),
  user: z.string().min(1).meta({ description: 'User to log in as. Required.', examples: ['deploy'] }),
  host_key: z
    .union([fingerprintSchema, z.array(fingerprintSchema).min(1).max(MAX_PINNED_HOST_KEYS)])
    .optional()
    .meta({
      description:
        "The server's host key, pinned: its OpenSSH SHA256 fingerprint (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the server), or a list of them (at most 10, e.g. during a key rotation). " +
        'A server offering any other key is refused during key exchange, before any credential is sent (Connector.HostKeyMismatch). ' +
        "Required for calls: there is no trust on first use. `connectors test` without it reports the key the server offers, to check and pin. Default: none.",
      examples: ['SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s'],
    }),
  password: sensitive(z.string().min(1))
    .optional()
    .describe('Password of `user` (sensitive: encrypted at rest, masked on read). Give this or `private_key`, or both (the key is tried first). Default: none.'),
  private_key: multiline(sensitive(z.string().min(1)))
    .optional()
    .describe(
      'Private key of `user`, the whole text of the key file: OpenSSH (`-----BEGIN OPENSSH PRIVATE KEY-----`), or PEM RSA, ECDSA or Ed25519 (sensitive: encrypted at rest, masked on read). Default: none.',
    ),
  passphrase: sensitive(z.string().min(1))
    .optional()
    .describe('Passphrase of an encrypted `private_key` (sensitive: encrypted at rest, masked on read). Default: none.'),
  connect_timeout: durationSchema
    .default(DEFAULT_CONNECT_TIMEOUT_MS)
    .meta({ description: "Longest time to connect, exchange keys and authenticate: milliseconds or a duration such as '5s'. Default 10 s.", examples: ['5s'] }),
  jump_host: z
    .strictObject({
      host: z.string().trim().min(1).meta({ description: 'Host name or IP address of the jump host. Required.', examples: ['bastion.example.com'] }),
      port: z.number().int().min(1).max(65_535).default(22).describe('TCP port of the jump host, 1 to 65535. Default 22.'),
      user: z.string().min(1).meta({ description: 'User to log in to the jump host as. Required.', examples: ['jump'] }),
      host_key: z
        .union([fingerprintSchema, z.array(fingerprintSchema).min(1).max(MAX_PINNED_HOST_KEYS)])
        .meta({ description: "The jump host's host key, pinned like `host_key` (SHA256 fingerprint, or a list). Required: a jump host is never trusted on first use." }),
      password: sensitive(z.string().min(1)).optional().describe('Password on the jump host (sensitive). Give this or `private_key`. Default: none.'),
      private_key: multiline(sensitive(z.string().min(1))).optional().describe('Private key for the jump host, the whole key file (sensitive). Default: none.'),
      passphrase: sensitive(z.string().min(1)).optional().describe('Passphrase of the jump host\'s `private_key` (sensitive). Default: none.'),
    })
    .optional()
    .describe(
      'An SSH server to connect through, as OpenSSH\'s ProxyJump: the connection to `host` is tunnelled through it (direct-tcpip), with its own pinned host key and credentials. Default: none (connect directly).',
    ),
};

/** A jump host's inputs, validated. */
export interface SshJumpInputs {
  host: string;
  port: number;
  user: string;
  host_key: string | string[];
  password?: string;
  private_key?: string;
  passphrase?: string;
}

/** The connection part of validated SSH or SFTP inputs. */
export interface SshConnectionInputs {
  host: string;
  port: number;
  user: string;
  host_key?: string | string[];
  password?: string;
  private_key?: string;
  passphrase?: string;
  connect_timeout: number | string;
  jump_host?: SshJumpInputs;
}

/** The fingerprints `host_key` pins, or none. */
export function pinnedHostKeys(hostKey: unknown): string[] {
  if (typeof hostKey === 'string') return [hostKey.trim()];
  if (Array.isArray(hostKey)) return hostKey.filter((k): k is string => typeof k === 'string').map((k) => k.trim());
  return [];
}

/**
 * Where an SSH or SFTP connector's calls go, for binding its secrets to that server: `host:port`, and
 * the pinned host keys, since the keys decide who can read what is sent: an override that pins
 * another key (or none) goes to whatever server offers that key, and must not get the stored
 * password. E.g. `ssh.example.com:22 host_key=SHA256:uNiV…`, and through a jump host
 * `ssh.internal:22 host_key=SHA256:uNiV… via bastion.example.com:22 host_key=SHA256:Zm9v…`.
 */
export function sshAddress(inputs: Record<string, unknown>): string | undefined {
  if (typeof inputs.host !== 'string' || inputs.host.trim() === '') return undefined;
  const port = inputs.port ?? 22;
  const keys = [...new Set(pinnedHostKeys(inputs.host_key))].sort();
  const address = `${inputs.host.trim().toLowerCase()}:${String(port)}${keys.length > 0 ? ` host_key=${keys.join(',')}` : ''}`;
  // Through a jump host, that host (and its pinned key) carries every byte, and receives its own secrets.
  const jump = typeof inputs.jump_host === 'object' && inputs.jump_host !== null ? sshAddress({ ...(inputs.jump_host as Record<string, unknown>), jump_host: undefined }) : undefined;
  return jump === undefined ? address : `${address} via ${jump}`;
}

/** `deploy@ssh.example.com:22`: who and where, for messages. Never a secret. */
export function sshTarget(inputs: Pick<SshConnectionInputs, 'host' | 'port' | 'user'>): string {
  return `${inputs.user}@${inputs.host}:${inputs.port}`;
}

/** The OpenSSH fingerprint of a host key blob, and the key's type (the blob's first field). */
export function describeHostKey(blob: Buffer): { fingerprint: string; type: string } {
  const fingerprint = `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
  let type = 'unknown';
  if (blob.length >= 4) {
    const length = blob.readUInt32BE(0);
    if (length > 0 && length < 64 && blob.length >= 4 + length) type = blob.subarray(4, 4 + length).toString('latin1');
  }
  return { fingerprint, type };
}

/** Who a message is about: `SSH connector deploy_box (deploy@host:22)`, or `SSH (inline) deploy@host:22`. */
export function subjectOf(typeName: string, inputs: Pick<SshConnectionInputs, 'host' | 'port' | 'user'>, ctx: Pick<InvokeContext, 'connector'>): string {
  return ctx.connector ? `${typeName} connector ${ctx.connector} (${sshTarget(inputs)})` : `${typeName} (inline) ${sshTarget(inputs)}`;
}

/** Why a connection attempt failed, before ssh2's error is mapped to a failure. */
export class HostKeyRefused extends Error {
  constructor(
    readonly offered: string,
    readonly keyType: string,
    readonly pinned: string[],
    /** Which server offered it: `server`, or `jump host`. */
    readonly role = 'server',
  ) {
    super(pinned.length === 0 ? 'no host key pinned' : 'host key not pinned');
    this.name = 'HostKeyRefused';
  }
}

/** The private key ssh2 can use, or the failure that says what is wrong with it (never its text). */
function checkedPrivateKey(inputs: SshConnectionInputs, subject: string): void {
  if (inputs.private_key === undefined) return;
  const parsed = utils.parseKey(inputs.private_key, inputs.passphrase);
  if (!(parsed instanceof Error)) return;
  if (/no passphrase given/i.test(parsed.message)) {
    throw permanentFailure(FailureType.InvalidInput, `${subject}: private_key is encrypted: give its passphrase`, { field: 'passphrase' });
  }
  if (/bad passphrase|decrypt/i.test(parsed.message)) {
    throw permanentFailure(FailureType.AuthRefused, `${subject}: passphrase does not decrypt private_key: fix the connector's passphrase`, { field: 'passphrase' });
  }
  throw permanentFailure(
    FailureType.InvalidInput,
    `${subject}: private_key is not a private key this client reads (OpenSSH, or PEM RSA, ECDSA or Ed25519; give the whole file)`,
    { field: 'private_key' },
  );
}

/** Refuses, before connecting, inputs that cannot make a call: no pinned host key, no credential, an unusable key. */
export function requireCallable(typeName: string, inputs: SshConnectionInputs, ctx: Pick<InvokeContext, 'connector'>): void {
  const subject = subjectOf(typeName, inputs, ctx);
  if (pinnedHostKeys(inputs.host_key).length === 0) {
    throw permanentFailure(
      FailureType.InvalidInput,
      `${subject}: host_key is not set: a connector calls only a server whose host key it pins (no trust on first use). ` +
        "Run the connection test (connectors test, the API's or the console's Test) to see the key the server offers, check it with the server's owner, and pin it as host_key",
      { field: 'host_key' },
    );
  }
  if (inputs.password === undefined && inputs.private_key === undefined) {
    throw permanentFailure(FailureType.InvalidInput, `${subject}: give password or private_key to log in`, { field: 'password' });
  }
  checkedPrivateKey(inputs, subject);
  const jump = inputs.jump_host;
  if (jump) {
    if (jump.password === undefined && jump.private_key === undefined) {
      throw permanentFailure(FailureType.InvalidInput, `${subject}: give jump_host.password or jump_host.private_key to log in to the jump host`, { field: 'jump_host.password' });
    }
    checkedPrivateKey({ ...jump, connect_timeout: inputs.connect_timeout }, `${subject}: jump_host`);
  }
}

/** Options of {@link connectSsh}. */
interface ConnectOptions {
  /** Fingerprints to accept; empty: refuse whatever is offered, after noting it (a connection test's probe). */
  pinned: string[];
  signal: AbortSignal;
}

/** A failure of the connection to the jump host, told apart from one of the server behind it. */
export class JumpHostFailed extends Error {
  constructor(readonly reason: unknown) {
    super('jump host failed');
    this.name = 'JumpHostFailed';
  }
}

/**
 * Opens an SSH connection and authenticates, through `jump_host` when the inputs name one. Rejects
 * with {@link HostKeyRefused} when a server's key is not pinned (ssh2 then closes the connection
 * before authentication), with the abort reason when `signal` fires, else with ssh2's error (wrapped
 * in {@link JumpHostFailed} when it is the jump host's).
 */
export async function connectSsh(inputs: SshConnectionInputs, options: ConnectOptions): Promise<Client> {
  const jump = inputs.jump_host;
  if (!jump) return connectDirect(inputs, options);
  const jumpInputs: SshConnectionInputs = { ...jump, connect_timeout: inputs.connect_timeout };
  const via = await connectDirect(jumpInputs, { pinned: pinnedHostKeys(jump.host_key), signal: options.signal, role: 'jump host' }).catch((err: unknown) => {
    throw options.signal.aborted ? err : new JumpHostFailed(err);
  });
  try {
    const tunnel = await new Promise<ClientChannel>((resolve, reject) => {
      via.forwardOut('127.0.0.1', 0, inputs.host, inputs.port, (err, channel) => (err ? reject(new JumpHostFailed(err)) : resolve(channel)));
    });
    const client = await connectDirect(inputs, { ...options, sock: tunnel });
    // The jump connection lives as long as the one it carries.
    client.on('close', () => via.end());
    return client;
  } catch (err) {
    via.end();
    throw err;
  }
}

function connectDirect(inputs: SshConnectionInputs, options: ConnectOptions & { role?: string; sock?: ClientChannel }): Promise<Client> {
  return new Promise<Client>((resolve, reject) => {
    if (options.signal.aborted) {
      reject(options.signal.reason);
      return;
    }
    const client = new Client();
    let refused: HostKeyRefused | undefined;
    let settled = false;
    const finish = (err: unknown, ok?: Client) => {
      if (settled) return;
      settled = true;
      options.signal.removeEventListener('abort', onAbort);
      if (ok) resolve(ok);
      else {
        client.end();
        reject(err);
      }
    };
    const onAbort = () => {
      client.destroy();
      finish(options.signal.reason);
    };
    options.signal.addEventListener('abort', onAbort, { once: true });
    // Only the methods the inputs have a credential for, key first: ssh2's default would also try
    // `none` and an agent, neither of which a connector means.
    const methods: AuthenticationType[] = [];
    if (inputs.private_key !== undefined) methods.push('publickey');
    if (inputs.password !== undefined) methods.push('password');
    const config: ConnectConfig = {
      host: inputs.host,
      port: inputs.port,
      sock: options.sock,
      username: inputs.user,
      password: inputs.password,
      privateKey: inputs.private_key,
      passphrase: inputs.passphrase,
      authHandler: methods.length > 0 ? methods : ['none'],
      readyTimeout: parseDurationMs(inputs.connect_timeout) ?? DEFAULT_CONNECT_TIMEOUT_MS,
      // Runs during key exchange, before authentication: a key that is not pinned ends the
      // connection with no credential sent.
      hostVerifier: (key: Buffer) => {
        const { fingerprint, type } = describeHostKey(key);
        if (options.pinned.includes(fingerprint)) return true;
        refused = new HostKeyRefused(fingerprint, type, options.pinned, options.role);
        return false;
      },
      // A pooled connection that the network silently dropped is noticed within a minute.
      keepaliveInterval: 15_000,
      keepaliveCountMax: 3,
    };
    client.on('ready', () => finish(undefined, client));
    client.on('error', (err) => finish(refused ?? err));
    client.on('close', () => finish(refused ?? new Error('the server closed the connection before it was ready')));
    try {
      client.connect(config);
    } catch (err) {
      finish(err);
    }
  });
}

/**
 * Connects only to learn the host key the server offers, refusing it during key exchange: nothing
 * is authenticated and no credential is sent.
 */
export async function probeHostKey(inputs: SshConnectionInputs, signal: AbortSignal): Promise<HostKeyRefused> {
  // The target's credentials stay home; a jump host, pinned, still needs its own to open the tunnel.
  const probe = { ...inputs, password: undefined, private_key: undefined, passphrase: undefined };
  const client = await connectSsh(probe, { pinned: [], signal }).catch((err: unknown) => err);
  if (client instanceof HostKeyRefused) return client;
  if (client instanceof Client) client.end();
  throw client;
}

/**
 * The failure for an error of connecting or of the connection. `subject` says which connector and
 * which server (see {@link subjectOf}); the message never holds a credential.
 */
export function connectionFailure(err: unknown, inputs: SshConnectionInputs, subject: string): ApplicationFailure {
  // Already a failure (refused inputs, say): it says what it means.
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof JumpHostFailed && inputs.jump_host) {
    const jump = inputs.jump_host;
    return connectionFailure(err.reason, { ...jump, connect_timeout: inputs.connect_timeout }, `${subject} through jump host ${sshTarget(jump)}`);
  }
  if (err instanceof HostKeyRefused) {
    const pinned = err.pinned.join(', ');
    const field = err.role === 'jump host' ? 'jump_host.host_key' : 'host_key';
    return permanentFailure(
      FailureType.HostKeyMismatch,
      `${subject}: the ${err.role} offered host key ${err.offered} (${err.keyType}), which ${field} does not pin (${pinned}): refused before any credential was sent to it. ` +
        `If its key really changed, check the new one with its owner and pin it in ${field}`,
      { offered: err.offered, key_type: err.keyType, pinned: err.pinned, field },
    );
  }
  const level = (err as { level?: unknown })?.level;
  const message = err instanceof Error ? err.message : String(err);
  if (level === 'client-authentication') {
    const tried = [inputs.private_key !== undefined && 'publickey', inputs.password !== undefined && 'password'].filter(Boolean).join(', ');
    return permanentFailure(
      FailureType.AuthRefused,
      `${subject}: the server refused the credentials of user ${inputs.user} (tried ${tried}): wrong password or private key, or the key is not authorized for the user; fix the connector`,
      { user: inputs.user },
    );
  }
  if (level === 'client-timeout') {
    const timeoutMs = parseDurationMs(inputs.connect_timeout) ?? DEFAULT_CONNECT_TIMEOUT_MS;
    return transientFailure(FailureType.Timeout, `${subject}: no SSH connection within connect_timeout (${timeoutMs} ms)`, { details: { code: 'CONNECT_TIMEOUT' } });
  }
  if (errorCode(err) || level === 'client-socket' || level === 'client-dns') return networkFailure(subject, err);
  if (/closed the connection|Connection lost|No response from server|Not connected/i.test(message)) {
    return transientFailure(FailureType.Network, `${subject} failed: ${/before it was ready/.test(message) ? 'the server closed the connection during the handshake' : 'the connection was lost'}`);
  }
  // Protocol and handshake errors (no common algorithm, a malformed packet): the same on every retry.
  // ssh2's messages name algorithms and protocol states, never credentials.
  return permanentFailure(FailureType.External, `${subject}: SSH ${typeof level === 'string' ? `${level} ` : ''}error: ${message}`);
}

/** A connection test's sentence for a failure: a plain sentence for an unreachable server, else the failure's message. */
export function testFailureMessage(err: unknown, failure: ApplicationFailure, address: string): string {
  if (failure.type === FailureType.Network && errorCode(err)) return `Could not reach ${address}: ${describeNetworkError(err)}.`;
  return `${failure.message}.`;
}

/**
 * The connection test of a connector without `host_key`: connects only to learn the key the server
 * offers (refusing it, so nothing is authenticated or sent) and reports it, to be checked and pinned.
 */
export async function reportOfferedHostKey(inputs: SshConnectionInputs, ctx: InvokeContext, subject: string): Promise<{ ok: false; message: string }> {
  const address = `${inputs.host}:${inputs.port}`;
  try {
    const offered = await probeHostKey(inputs, ctx.signal);
    return {
      ok: false,
      message:
        `host_key is not set, so nothing was sent: ${address} offered host key ${offered.offered} (${offered.keyType}). ` +
        "Check it with the server's owner (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on the server) and pin it as host_key.",
    };
  } catch (err) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    return { ok: false, message: testFailureMessage(err, connectionFailure(err, inputs, subject), address) };
  }
}

/** One pooled SSH connection: connected when first needed, and again after it closed. */
export class SshConnectionSlot {
  private connecting?: Promise<Client>;
  private live?: Client;
  private ended = false;

  constructor(private readonly inputs: SshConnectionInputs) {}

  /** A ready connection: the open one, else a new one. */
  async client(signal: AbortSignal): Promise<Client> {
    if (this.ended) throw new Error('the pool was closed');
    if (this.live) return this.live;
    // Calls arriving together share one connection attempt; one cancelled call does not end it for the others.
    this.connecting ??= connectSsh(this.inputs, { pinned: pinnedHostKeys(this.inputs.host_key), signal: new AbortController().signal }).then(
      (client) => {
        this.connecting = undefined;
        if (this.ended) {
          client.end();
          throw new Error('the pool was closed');
        }
        this.live = client;
        client.on('close', () => {
          if (this.live === client) this.live = undefined;
        });
        // After ready, errors arrive here too (a reset connection): the next call connects again.
        client.on('error', () => {
          if (this.live === client) this.live = undefined;
          client.end();
        });
        return client;
      },
      (err: unknown) => {
        this.connecting = undefined;
        throw err;
      },
    );
    return abortable(this.connecting, signal);
  }

  /** Forgets a connection a call found broken, so that the next call opens another. */
  discard(client: Client): void {
    if (this.live === client) this.live = undefined;
    client.end();
  }

  close(): void {
    this.ended = true;
    this.live?.end();
    this.live = undefined;
  }
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** The SSH connections a type keeps: one per stored connector version and connection settings. */
export type SshPools = PoolManager<SshConnectionSlot>;

/** Creates the pools of an SSH-based type. */
export function createSshPools(options: PoolOptions = {}): SshPools {
  return new PoolManager<SshConnectionSlot>(async (slot) => slot.close(), options);
}

/** Everything a connection is built from: calls whose inputs differ in any of these must not share one. */
function settingsFingerprint(inputs: SshConnectionInputs): string {
  const settings = [inputs.host, inputs.port, inputs.user, pinnedHostKeys(inputs.host_key).sort(), inputs.password ?? null, inputs.private_key ?? null, inputs.passphrase ?? null, inputs.connect_timeout, inputs.jump_host ?? null];
  return createHash('sha256').update(JSON.stringify(settings)).digest('hex');
}

/** A connection for one call, and how to give it back. */
export interface SshSession {
  client: Client;
  /** Gives the connection back to its pool (or closes it); `broken` when the call found it unusable. */
  done(broken?: boolean): void;
}

/**
 * A ready connection for a call: pooled under `ctx.poolKey` (a stored connector), else one of its
 * own that `done` closes. Checks first that the inputs may call at all ({@link requireCallable}).
 */
export async function openSession(typeName: string, inputs: SshConnectionInputs, ctx: InvokeContext, pools: SshPools): Promise<SshSession> {
  requireCallable(typeName, inputs, ctx);
  if (ctx.poolKey === undefined) {
    const client = await connectSsh(inputs, { pinned: pinnedHostKeys(inputs.host_key), signal: ctx.signal });
    return { client, done: () => client.end() };
  }
  const lease = pools.lease(ctx.poolKey, settingsFingerprint(inputs), () => new SshConnectionSlot(inputs));
  try {
    const client = await lease.pool.client(ctx.signal);
    return {
      client,
      done: (broken) => {
        if (broken) lease.pool.discard(client);
        lease.release();
      },
    };
  } catch (err) {
    lease.release();
    throw err;
  }
}

/** Opens a channel running `command`, as a promise. */
export function execChannel(client: Client, command: string): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    try {
      client.exec(command, (err, channel) => (err ? reject(err) : resolve(channel)));
    } catch (err) {
      reject(err);
    }
  });
}

/** Quotes `text` as one word for a POSIX shell: `'it'\''s'`. */
export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}
