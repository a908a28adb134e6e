// The connector console's server side: its page and assets (built from console/ into console/assets/),
// and sign-in sessions, so that the page never holds the API token in anything a script can read.
// The management API (api/server.ts) registers it and authenticates every /v1 route; this module
// says what a session cookie is and how one is checked.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { createHash, createHmac, scryptSync, timingSafeEqual } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { bearerToken, HttpError } from './http';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * The route needs no token: it serves only the console's page and assets, which hold no data, or
     * clears the caller's own session cookie. The Host check still applies. Default: `false`.
     */
    public?: boolean;
  }
}

/** What the management API's tokens and sessions allow: every route, or reads (and test/introspect as stored). */
export type ApiAccess = 'read' | 'write';

/** How a request to the management API proved itself. */
export interface ApiAuthentication {
  access: ApiAccess;
  /** When the request came with the console's session cookie rather than a token: when that session ends, in ms since the epoch. */
  sessionExpiresAt?: number;
}

/** The connector console: the page at `/` and the sign-in sessions it uses. */
export interface ConsoleOptions {
  /**
   * Folder of the console's built page: `index.html` and the files it loads, flat (no subfolders).
   * Read once, when the API is created; a later build needs a restart. Without an `index.html` there,
   * `GET /` answers 503 with a page saying how to build it.
   * Default: {@link DEFAULT_ASSETS_DIR} (`<repo>/console/assets` from the sources, `dist/console/assets`
   * in the package).
   */
  assetsDir?: string;
  /**
   * How long a console sign-in lasts, in milliseconds. The cookie is a browser-session cookie (it
   * ends when the browser closes); its value also carries this expiry, checked by the server, so a
   * browser left open does not stay signed in. Default: 28800000 (8 h).
   */
  sessionTtlMs?: number;
}

/** 8 h: a working day; signing in again after it costs a paste of the token. */
export const DEFAULT_SESSION_TTL_MS = 8 * 60 * 60 * 1000;
/** The session cookie's name. */
export const SESSION_COOKIE = 'tc_console';
/**
 * The header (value `1`) without which the session cookie is ignored. A cross-site form, link or
 * image cannot set a custom header, and a cross-site script can only with a CORS preflight that this
 * API never grants: defence in depth beside `SameSite=Strict`.
 */
export const CONSOLE_HEADER = 'x-tc-console';

/**
 * The console's Content-Security-Policy: its own scripts, styles, images and fonts only, no inline
 * script, requests to this API only, no framing. Inline styles are allowed because the code editor
 * (CodeMirror) injects style elements; styles cannot run code.
 */
export const CONSOLE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** A session cannot claim to last longer than this process's TTL by more than this clock difference between API processes. */
const CLOCK_SKEW_MS = 60_000;
const SESSION_VALUE = /^([1-9][0-9]{0,14})\.([a-z]{1,10})\.([A-Za-z0-9_-]{43})$/;
/** Cookie headers carrying more session cookies than this (a cookie-tossing attempt, say) are judged by their first ones only. */
const MAX_SESSION_COOKIES = 4;

/**
 * Stateless console sessions. A session is `<expiry ms>.<access>.<MAC>`, the MAC being
 * HMAC-SHA256 under the SHA-256 of the token that signed in, over `tc_console|<expiry>|<access>`.
 * So a session holds no token, survives restarts, is accepted by every API process that accepts its
 * token, and ends when its token is removed from the configuration (or moved to the other access level).
 */
export class ConsoleSessions {
  private readonly keys: Array<{ key: Buffer; access: ApiAccess }>;

  /** `levels`: the tokens of each access level, as the bearer check gets them. `ttlMs`: see {@link ConsoleOptions.sessionTtlMs}. */
  constructor(
    levels: ReadonlyArray<readonly [ApiAccess, readonly string[]]>,
    readonly ttlMs: number = DEFAULT_SESSION_TTL_MS,
  ) {
    if (!(Number.isSafeInteger(ttlMs) && ttlMs > 0)) throw new RangeError('console.sessionTtlMs must be a whole number of milliseconds above 0');
    this.keys = levels.flatMap(([access, tokens]) => tokens.map((token) => ({ key: sessionKey(token), access })));
  }

  /** A new session for `token`, which the bearer check accepted with `access`. */
  issue(token: string, access: ApiAccess, now = Date.now()): { value: string; expiresAt: number } {
    const expiresAt = now + this.ttlMs;
    return { value: `${expiresAt}.${access}.${mac(sessionKey(token), String(expiresAt), access).toString('base64url')}`, expiresAt };
  }

  /**
   * The session `value` stands for, or why there is none. Every configured token's key is tried, matched
   * or not, and compared in constant time, so timing says nothing about which token signed it.
   */
  verify(value: string, now = Date.now()): { access: ApiAccess; expiresAt: number } | 'expired' | 'invalid' {
    const parts = SESSION_VALUE.exec(value);
    if (!parts) return 'invalid';
    const [, expiry, claimed] = parts;
    const expiresAt = Number(expiry);
    const presented = Buffer.from(parts[3], 'base64url');
    let access: ApiAccess | undefined;
    for (const entry of this.keys) {
      // No early exit, as in TokenSet. The access level is under the MAC and must also be the token's own:
      // a token moved to the read-only list ends its read-write sessions.
      const valid = timingSafeEqual(mac(entry.key, expiry, claimed), presented);
      if (valid && entry.access === claimed && access === undefined) access = entry.access;
    }
    if (access === undefined) return 'invalid';
    if (expiresAt <= now) return 'expired';
    // A session issued under a longer TTL than this process's ends when this process's TTL says.
    if (expiresAt > now + this.ttlMs + CLOCK_SKEW_MS) return 'invalid';
    return { access, expiresAt };
  }

  /** The access of a request that carries no Authorization header, by its session cookie; a 401 when it has no valid one. */
  authenticate(request: FastifyRequest): ApiAuthentication {
    const values = cookieValues(request.headers.cookie, SESSION_COOKIE).slice(0, MAX_SESSION_COOKIES);
    if (values.length === 0) throw unauthorized('this request has no console session: sign in with a token (POST /v1/session), or send Authorization: Bearer <token>');
    let expired = false;
    for (const value of values) {
      const session = this.verify(value);
      if (typeof session === 'object') return { access: session.access, sessionExpiresAt: session.expiresAt };
      expired ||= session === 'expired';
    }
    throw unauthorized(
      expired
        ? 'the console session has expired: sign in again with a token'
        : 'the console session is not valid (its token is no longer accepted, or it was altered): sign in again with a token',
    );
  }
}

/** Whether a request says it comes from the console's page: only such requests may use the session cookie. */
export function isConsoleRequest(request: FastifyRequest): boolean {
  return request.headers[CONSOLE_HEADER] === '1';
}

/** What {@link registerConsole} needs from the API. */
export interface ConsoleRegistration {
  /** See {@link ConsoleOptions.assetsDir}. */
  assetsDir?: string;
  sessions: ConsoleSessions;
  /** How the API authenticated a request (its onRequest hook ran before any /v1 route). */
  authenticationOf(request: FastifyRequest): ApiAuthentication;
  /** The Temporal Web UI the page links to, if any. */
  temporalUi?: { url: string; namespace: string };
}

/** The folder of the built console: `console/assets` beside `api/` (sources) or `dist/api/` (package). */
export const DEFAULT_ASSETS_DIR = path.resolve(__dirname, '..', 'console', 'assets');

/**
 * Adds the console to the API: `GET /` (the page), `GET /console/<file>` (its assets) and
 * `POST|GET|DELETE /v1/session`. The page and assets are read now, once, into memory: a request can
 * name only a file that was there, so no path reaches the file system.
 */
export function registerConsole(app: FastifyInstance, registration: ConsoleRegistration): void {
  const { sessions, authenticationOf } = registration;
  const assets = loadAssets(registration.assetsDir ?? DEFAULT_ASSETS_DIR);
  const open = { config: { public: true } };

  app.get('/', open, async (_request, reply) => {
    pageHeaders(reply);
    if (!assets) return reply.code(503).type('text/html; charset=utf-8').send(NOT_BUILT_PAGE);
    return reply.type(assets.index.contentType).send(assets.index.body);
  });

  app.get('/console/:file', open, async (request, reply) => {
    const asset = assets?.files.get((request.params as { file: string }).file);
    if (!asset) throw new HttpError(404, 'Request.NoRoute', 'the console has no such file');
    pageHeaders(reply);
    // Asset names do not change with their content: let the browser keep them, but ask each time.
    void reply.header('cache-control', 'no-cache').header('etag', asset.etag);
    if (request.headers['if-none-match'] === asset.etag) return reply.code(304).send();
    return reply.type(asset.contentType).send(asset.body);
  });

  const sessionBody = (auth: ApiAuthentication) => ({
    access: auth.access,
    // A token does not expire; a session does.
    expires_at: auth.sessionExpiresAt === undefined ? null : new Date(auth.sessionExpiresAt).toISOString(),
    temporal_ui: registration.temporalUi ? { url: registration.temporalUi.url, namespace: registration.temporalUi.namespace } : null,
  });

  app.post('/v1/session', async (request, reply) => {
    const auth = authenticationOf(request);
    const token = bearerToken(request.headers.authorization);
    // Else a session could renew itself for ever, and the TTL would mean nothing.
    if (auth.sessionExpiresAt !== undefined || token === undefined) {
      throw unauthorized('signing in to the console needs the token itself, in an Authorization: Bearer <token> header');
    }
    const session = sessions.issue(token, auth.access);
    void reply.header('set-cookie', sessionCookie(session.value, request));
    return sessionBody({ access: auth.access, sessionExpiresAt: session.expiresAt });
  });

  app.get('/v1/session', async (request) => sessionBody(authenticationOf(request)));

  // Needs no session: signing out must work after the session expired or its token was revoked. It
  // changes only the caller's own cookie, and as a DELETE it cannot come from another site's page
  // without a CORS preflight, which this API refuses.
  app.delete('/v1/session', open, async (request, reply) => reply.code(204).header('set-cookie', sessionCookie('', request, true)).send());
}

interface Asset {
  body: Buffer;
  contentType: string;
  etag: string;
}

/** The built console in memory; undefined when the folder or its `index.html` is missing. */
function loadAssets(dir: string): { index: Asset; files: Map<string, Asset> } | undefined {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new Error(`the console's assets folder ${dir} cannot be read: ${code ?? (err as Error).message}`);
  }
  const files = new Map<string, Asset>();
  // Regular files only (no subfolders, no links out of the folder), under names a URL carries as they are.
  for (const entry of entries.filter((e) => e.isFile() && /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(e.name))) {
    const body = readFileSync(path.join(dir, entry.name));
    files.set(entry.name, { body, contentType: contentTypeOf(entry.name), etag: `"${createHash('sha256').update(body).digest('base64url')}"` });
  }
  const index = files.get('index.html');
  if (!index) return undefined;
  files.delete('index.html');
  return { index, files };
}

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
};

function contentTypeOf(name: string): string {
  // Anything else is bytes; with nosniff, a browser will not guess a script or a page from them.
  return CONTENT_TYPES[path.extname(name).toLowerCase()] ?? 'application/octet-stream';
}

/** Headers of the page and of every asset (an SVG or a source map opened on its own is a document too). */
function pageHeaders(reply: FastifyReply): void {
  void reply.headers({
    'content-security-policy': CONSOLE_CSP,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
  });
}

/**
 * The session cookie: HttpOnly (no script reads it), SameSite=Strict (no other site's request carries
 * it), Path=/, Secure over https, and no Max-Age or Expires, so it ends with the browser session.
 */
function sessionCookie(value: string, request: FastifyRequest, clear = false): string {
  const attributes = [`${SESSION_COOKIE}=${value}`, 'Path=/', 'HttpOnly', 'SameSite=Strict'];
  if (reachedOverHttps(request)) attributes.push('Secure');
  if (clear) attributes.push('Max-Age=0');
  return attributes.join('; ');
}

/**
 * Whether the browser reached the API over https: directly, or through a reverse proxy (the usual
 * way to serve it over https) that says so with `X-Forwarded-Proto: https` or `Forwarded: proto=https`.
 * Without Secure there, the browser would also send the cookie over plain http to the same name. The
 * headers are believed without a list of trusted proxies because they can only add Secure: a client
 * that claims https falsely makes its own cookie one that its plain-http browser will not keep.
 */
function reachedOverHttps(request: FastifyRequest): boolean {
  if (request.protocol === 'https') return true;
  const forwardedProto = request.headers['x-forwarded-proto'];
  const first = (Array.isArray(forwardedProto) ? forwardedProto[0] : forwardedProto)?.split(',')[0].trim().toLowerCase();
  if (first === 'https') return true;
  const forwarded = request.headers.forwarded?.split(',')[0] ?? '';
  return forwarded.split(';').some((pair) => pair.trim().toLowerCase().replace(/"/g, '') === 'proto=https');
}

/** The values of every cookie named `name` in a Cookie header. */
function cookieValues(header: string | undefined, name: string): string[] {
  const values: string[] = [];
  for (const pair of (header ?? '').split(';')) {
    const at = pair.indexOf('=');
    if (at > 0 && pair.slice(0, at).trim() === name) values.push(pair.slice(at + 1).trim());
  }
  return values;
}

/**
 * The signing key of a token's sessions: scrypt, not a plain hash, because a cookie that leaks is
 * material for guessing its token offline, and tokens may be short. Computed once per token when the
 * API starts (tens of milliseconds); the fixed salt keeps it the same on every API process.
 */
function sessionKey(token: string): Buffer {
  return scryptSync(token, 'temporal-connectors console session v1', 32);
}

/** The MAC of a session: over its text as the cookie carries it, so no other spelling of the same expiry verifies. */
function mac(key: Buffer, expiry: string, access: string): Buffer {
  return createHmac('sha256', key).update(`tc_console|${expiry}|${access}`, 'utf8').digest();
}

function unauthorized(message: string): HttpError {
  return new HttpError(401, 'Request.Unauthorized', message, { 'www-authenticate': 'Bearer realm="temporal-connectors"' });
}

const NOT_BUILT_PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Connector console not built</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40em; margin: 3em auto; line-height: 1.5">
<h1>The connector console is not built</h1>
<p>This API serves the console's page from its <code>console/assets</code> folder, which holds no built page yet.
Build it with <code>npm run build:console</code> in the project, then restart the API.</p>
<p>The HTTP API under <code>/v1/</code> works without it.</p>
</body>
</html>
`;
