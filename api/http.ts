// What both HTTP servers (the management API and the codec server) share: bearer tokens and error answers.
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIPv6 } from 'node:net';

/** The token of an `Authorization: Bearer <token>` header; undefined when the header is missing or of another form. */
export function bearerToken(header: string | undefined): string | undefined {
  return /^Bearer[ \t]+([^\s]+)[ \t]*$/i.exec(header ?? '')?.[1];
}

/**
 * A set of accepted bearer tokens. Tokens are kept as SHA-256 digests, so every comparison is between
 * equal-length values, and every token is compared, matched or not, so timing says nothing about which
 * or how many there are.
 */
export class TokenSet {
  private readonly digests: Buffer[];

  constructor(tokens: readonly string[]) {
    this.digests = tokens.map(digest);
  }

  get size(): number {
    return this.digests.length;
  }

  matches(presented: string): boolean {
    const candidate = digest(presented);
    let found = false;
    for (const known of this.digests) found = timingSafeEqual(candidate, known) || found;
    return found;
  }
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
export function checkedAllowedHosts(hosts: readonly string[], setting: string): string[] {
  return hosts.map((host) => {
    const bare = typeof host === 'string' ? host.replace(/^\[(.*)\]$/, '$1') : '';
    // A colon is an IPv6 address or a port; only the former is a host.
    if (!(bare.includes(':') ? isIPv6(bare) : /^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$/i.test(bare))) {
      throw new Error(`${setting}: "${String(host).slice(0, 100)}" is not a host name such as codec.example.com (no scheme, port or path)`);
    }
    return bare.toLowerCase();
  });
}

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
