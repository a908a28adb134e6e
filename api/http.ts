// What both HTTP servers (the management API and the codec server) share: bearer tokens and their
// check, the Host check, error answers, and listening. Token lists and host names from the
// environment are parsed and checked by core/config.ts, which these checks reuse.
import type { FastifyInstance } from 'fastify';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { checkedHostNames, checkedTokens } from '../core/config';

export { checkedTokens };

/** The token of an `Authorization: Bearer <token>` header; undefined when the header is missing or of another form. */
export function bearerToken(header: string | undefined): string | undefined {
  return /^Bearer[ \t]+([^\s]+)[ \t]*$/i.exec(header ?? '')?.[1];
}

/**
 * Accepted bearer tokens by access level. Tokens are kept as SHA-256 digests, so every comparison is
 * between equal-length values, and every token is compared, matched or not, so timing says nothing
 * about which or how many there are.
 */
export class TokenSet<Level extends string> {
  private readonly entries: Array<{ digest: Buffer; level: Level }>;

  /** `levels`: the tokens of each access level; a token listed under several levels gets the first. */
  constructor(levels: ReadonlyArray<readonly [Level, readonly string[]]>) {
    this.entries = levels.flatMap(([level, tokens]) => tokens.map((token) => ({ digest: digest(token), level })));
  }

  get size(): number {
    return this.entries.length;
  }

  /** The access level of `presented`; undefined when it is none of the tokens. */
  levelOf(presented: string): Level | undefined {
    const candidate = digest(presented);
    let found: Level | undefined;
    for (const { digest: known, level } of this.entries) {
      // No early exit: each known token costs one comparison, whichever matches.
      if (timingSafeEqual(candidate, known) && found === undefined) found = level;
    }
    return found;
  }
}

/**
 * The bearer check of a server: the access level of a request's `Authorization: Bearer <token>`,
 * compared in constant time against `tokens` (see {@link TokenSet}); 401 with a `WWW-Authenticate`
 * challenge of `realm` for a missing header or an unknown token. `server` names the server in
 * messages, e.g. `this API`.
 */
export function createBearerCheck<Level extends string>(options: {
  tokens: ReadonlyArray<readonly [Level, readonly string[]]>;
  server: string;
  realm: string;
}): (request: { headers: { authorization?: string } }) => Level {
  const tokens = new TokenSet(options.tokens);
  const { server, realm } = options;
  return (request) => {
    const presented = bearerToken(request.headers.authorization);
    if (presented === undefined) {
      throw new HttpError(401, 'Request.Unauthorized', `${server} needs an Authorization: Bearer <token> header`, {
        'www-authenticate': `Bearer realm="${realm}"`,
      });
    }
    const level = tokens.levelOf(presented);
    if (level === undefined) {
      throw new HttpError(401, 'Request.Unauthorized', `the bearer token is not valid for ${server}`, {
        'www-authenticate': `Bearer realm="${realm}", error="invalid_token"`,
      });
    }
    return level;
  };
}

/** A server listening: what `startManagementApi` and `startCodecServer` return. */
export interface RunningHttpServer {
  /** Base URL without a trailing slash, e.g. `http://127.0.0.1:8080`. */
  url: string;
  app: FastifyInstance;
  /** Stops accepting requests, lets in-flight ones finish, then closes. */
  close(): Promise<void>;
}

/** Makes `app` listen on `host` and `port` (`0` picks a free one) and says where. */
export async function listen(app: FastifyInstance, options: { host: string; port: number }): Promise<RunningHttpServer> {
  await app.listen({ host: options.host, port: options.port });
  const address = app.server.address() as AddressInfo;
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return { url: `http://${shown}:${address.port}`, app, close: () => app.close() };
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/**
 * An answer other than success, raised by a route or hook of the management API or the codec
 * server and shaped by that server's one error handler.
 */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly type: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/**
 * Whether `host` (a name or an IP address, without port or brackets) always means this machine:
 * `localhost`, `127.0.0.0/8`, `::1`. A browser resolves none of these through DNS, so a page of
 * another site cannot rebind them to itself.
 */
export function isLoopbackHost(host: string): boolean {
  const name = unmapped(host.toLowerCase());
  return name === 'localhost' || name === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name);
}

/**
 * Host names configured as further names of a server (a reverse proxy's name, say), checked:
 * names or IP addresses only, no scheme, port or path. `setting` names where they came from.
 */
export const checkedAllowedHosts = checkedHostNames;

/** What {@link createHostCheck} reads of a request: Fastify's, or any Node request. */
export interface HostCheckedRequest {
  headers: { host?: string };
  socket?: { localAddress?: string };
}

/**
 * A check of the `Host` header against the names the server answers to: loopback names and
 * addresses, the address the request arrived on, and `allowedHosts`. Against DNS rebinding: a page
 * of evil.example whose name is made to resolve to 127.0.0.1 reaches the server with
 * `Host: evil.example` and is refused (403 `Request.HostNotAllowed`) before anything else happens.
 * The port is not compared: a reverse proxy may forward its own.
 */
export function createHostCheck(options: { allowedHosts: readonly string[]; setting: string; server: string }): (request: HostCheckedRequest) => void {
  const allowed = new Set(options.allowedHosts);
  return (request) => {
    const header = request.headers.host;
    const host = header === undefined ? undefined : hostName(header);
    if (host !== undefined && (isLoopbackHost(host) || allowed.has(host))) return;
    // The address the connection came in on is a name of the server for its own client (one bound to 0.0.0.0 has several).
    const local = request.socket?.localAddress;
    if (host !== undefined && local !== undefined && unmapped(local.toLowerCase()) === host) return;
    const shown = header === undefined ? 'no Host header' : `the Host header "${header.slice(0, 100)}"`;
    throw new HttpError(
      403,
      'Request.HostNotAllowed',
      `${shown} does not name ${options.server}: it answers to localhost, its own IP addresses and the names in ${options.setting} (a request for another name may be a DNS-rebinding attack from a web page)`,
    );
  };
}

/** `Host: [::1]:8888` → `::1`, `Host: Example.com:80` → `example.com`. */
function hostName(header: string): string {
  const value = header.trim().toLowerCase();
  const bracketed = /^\[([^\]]*)\](?::\d*)?$/.exec(value);
  if (bracketed) return bracketed[1];
  const colons = value.split(':').length - 1;
  return colons === 1 ? value.slice(0, value.indexOf(':')) : value;
}

/** `::ffff:10.0.0.5` (an IPv4 client of a dual-stack socket) → `10.0.0.5`. */
function unmapped(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice('::ffff:'.length) : address;
}
