/**
 * The SMTP connector type: sends one message per call (from, to, cc, bcc, subject, text, html and
 * small attachments) over STARTTLS or implicit TLS with a login, or over plain SMTP to a local relay
 * when the profile says so; tests the login; introspects what the server offers.
 *
 * A profile usually holds the server, the login, `from` and `allowed_recipients` (locked); workflows
 * give `to`, `subject` and the body. Mail is delivered at least once: a retried attempt sends the
 * same Message-ID, derived from the `connection`'s workflow ID, so receivers can drop the copy.
 *
 * Client: nodemailer's SMTPConnection and MailComposer, used directly rather than through a
 * transport, so that a cancelled activity closes the very socket of its call, and introspection can
 * read the server's EHLO answer.
 */
import { createHash } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import addressparser from 'nodemailer/lib/addressparser';
import MailComposer from 'nodemailer/lib/mail-composer';
import type Mail from 'nodemailer/lib/mailer';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { z } from 'zod';
import { durationSchema, parseDurationMs } from './durations';
import { FailureType, describeNetworkError, permanentFailure, transientFailure } from './errors';
import { withHeartbeats } from './heartbeats';
import { sensitive, sensitivePaths } from './sensitivity';
import type { ConnectionTestResult, ConnectorType, InvokeContext } from './types';

/** How long to wait for the TCP connection and the server's greeting when the inputs give none: 10 s. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** Longest silence of the server in the middle of a call when the inputs give none: 60 s. */
export const DEFAULT_TIMEOUT_MS = 60_000;
/**
 * Most bytes all attachments of one message may hold together, decoded: 1 MiB. A call's inputs travel
 * in workflow history (each payload at most 2 MB by default), where base64 adds a third.
 */
export const MAX_ATTACHMENT_BYTES = 1024 * 1024;
/** Most attachments one message may carry. */
export const MAX_ATTACHMENTS = 20;
/** Most recipients in `to`, `cc` and `bcc` together (RFC 5321 asks servers to take at least 100). */
export const MAX_RECIPIENTS = 100;
/** The port each `security` uses when the inputs give none. */
export const DEFAULT_PORTS = { starttls: 587, tls: 465, plain: 25 } as const;
/** How often a call heartbeats while it runs: 1 s. */
const HEARTBEAT_INTERVAL_MS = 1_000;

const SECURITY = ['starttls', 'tls', 'plain'] as const;
type Security = (typeof SECURITY)[number];

// CR, LF and NUL in an address or a file name would let a value start a header of its own.
const NO_LINE_BREAKS = /^[^\r\n\0]*$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const CONTENT_TYPE = /^[\w.+-]+\/[\w.+-]+(\s*;.*)?$/;

/** One mailbox, `ada@example.com` or `Ada Lovelace <ada@example.com>`. */
const mailbox = z.string().min(3).max(998).regex(NO_LINE_BREAKS, { message: 'must not contain line breaks or NUL' });
/** One mailbox or a list of them. */
const mailboxes = z.union([mailbox, z.array(mailbox).max(MAX_RECIPIENTS)]);

const attachmentSchema = z
  .strictObject({
    filename: z
      .string()
      .min(1)
      .max(255)
      .regex(NO_LINE_BREAKS, { message: 'must not contain line breaks or NUL' })
      .meta({ description: 'File name the receiver sees.', examples: ['invoice-42.pdf'] }),
    content: z.string().describe('The content: text as it is (`encoding: text`), or base64 (`encoding: base64`) for binary files.'),
    encoding: z.enum(['text', 'base64']).default('text').describe('How `content` is written: `text` (sent as UTF-8) or `base64`. Default `text`.'),
    content_type: z
      .string()
      .regex(CONTENT_TYPE, { message: 'must be a MIME type such as application/pdf' })
      .optional()
      .meta({ description: 'MIME type, e.g. `application/pdf`. Default: derived from `filename`.', examples: ['application/pdf', 'text/csv'] }),
    content_id: z
      .string()
      .min(1)
      .max(255)
      .regex(NO_LINE_BREAKS, { message: 'must not contain line breaks or NUL' })
      .optional()
      .describe('Content-ID for an inline image that `html` shows with `<img src="cid:<content_id>">`. Default: none (a plain attachment).'),
  })
  .describe('One attachment, given inline (never a path or URL: the connector worker reads no files and fetches nothing for a message).');

/** Inputs of an SMTP connector (snake_case: they are data in profiles, Vault secrets and overrides). */
export const smtpSchema = z
  .strictObject({
    host: z.string().min(1).max(253).regex(NO_LINE_BREAKS).meta({ description: 'Host name or IP address of the SMTP server.', examples: ['smtp.example.com'] }),
    port: z
      .number()
      .int()
      .min(1)
      .max(65_535)
      .optional()
      .describe('TCP port of the server, 1 to 65535. Default: 587 for `starttls`, 465 for `tls`, 25 for `plain`.'),
    security: z
      .enum(SECURITY)
      .default('starttls')
      .describe(
        'How the connection is protected: `starttls` (plain SMTP upgraded with STARTTLS before anything else is sent; a server that does not offer it is refused), ' +
          '`tls` (TLS from the first byte, SMTPS), or `plain` (no TLS at all, for a relay on the same host or network; must be said explicitly). Default `starttls`.',
      ),
    tls: z
      .strictObject({
        reject_unauthorized: z.boolean().default(true).describe('Refuse server certificates that do not verify. Default `true`.'),
        ca: z.string().min(1).optional().describe('PEM bundle of the certificate authorities to verify the server certificate against, e.g. a private CA or a pinned self-signed certificate. Default: the system CAs.'),
      })
      .optional()
      .describe('How the server certificate is verified, for `starttls` and `tls`. Default: against the system CAs, for the name in `host`.'),
    auth: z
      .strictObject({
        user: z.string().min(1).max(998).regex(NO_LINE_BREAKS).describe('User name of the SMTP login.'),
        password: sensitive(z.string().min(1).max(998).describe('Password of the SMTP login (sensitive: encrypted at rest, masked on read).')),
      })
      .optional()
      .describe('SMTP AUTH login (PLAIN or LOGIN, as the server offers). Default: none, for relays that take mail without a login.'),
    connect_timeout: durationSchema
      .default(DEFAULT_CONNECT_TIMEOUT_MS)
      .describe("Longest wait for the TCP connection and then for the server's greeting: milliseconds (a number) or a duration string such as '500ms', '10s'. Default 10 s."),
    timeout: durationSchema
      .default(DEFAULT_TIMEOUT_MS)
      .describe("Longest silence of the server in the middle of a call (TLS, login, each command, the message): milliseconds or a duration string such as '30s', '2m'. Default 60 s."),
    allowed_recipients: z
      .array(z.string().min(1).max(320).regex(NO_LINE_BREAKS))
      .optional()
      .meta({
        description:
          'Address patterns that `to`, `cc` and `bcc` must match, case-insensitively: `*` stands for any run of characters except `@` (`*@example.com`, `ops-*@example.com`, `*@*` for any). ' +
          'A call with any other recipient is refused before anything is sent. Lock it (`locked: [allowed_recipients]`), else a workflow may override it too. Default: none (any recipient).',
        examples: [['*@example.com', 'alerts@partner.example']],
      }),
    from: mailbox.optional().meta({ description: 'Sender, `ada@example.com` or `Ada <ada@example.com>`; also the envelope sender. Required to send.', examples: ['Billing <billing@example.com>'] }),
    reply_to: mailbox.optional().describe('Reply-To address. Default: none.'),
    to: mailboxes.optional().meta({ description: 'Recipients: one address or a list, one address per entry. At least one of `to`, `cc`, `bcc` is required to send.', examples: [['ada@example.com', 'Bob <bob@example.com>']] }),
    cc: mailboxes.optional().describe('Carbon-copy recipients: one address or a list, one address per entry. Default: none.'),
    bcc: mailboxes.optional().describe('Blind-copy recipients: in the envelope only, never in the headers the others see. One address or a list. Default: none.'),
    subject: z.string().max(998).optional().describe('Subject line. Default: none.'),
    text: z.string().optional().describe('Plain-text body. Default: none.'),
    html: z.string().optional().describe('HTML body; with `text` as well, the message carries both and the reader picks one. Default: none.'),
    attachments: z
      .array(attachmentSchema)
      .max(MAX_ATTACHMENTS)
      .optional()
      .describe(`Attachments, given inline: at most ${MAX_ATTACHMENTS}, and at most 1 MiB (1048576 bytes) in all once decoded. Default: none.`),
  })
  .superRefine((inputs, ctx) => {
    if (inputs.security === 'plain' && inputs.tls !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['tls'], message: 'has no effect with security plain, which sends without TLS' });
    }
    for (const field of ['from', 'reply_to'] as const) {
      const value = inputs[field];
      if (value !== undefined && !oneAddress(value)) ctx.addIssue({ code: 'custom', path: [field], message: 'must be one mail address, e.g. ada@example.com or Ada <ada@example.com>' });
    }
    let count = 0;
    for (const field of RECIPIENT_FIELDS) {
      list(inputs[field]).forEach((entry, i) => {
        count++;
        if (!oneAddress(entry)) ctx.addIssue({ code: 'custom', path: [field, i], message: 'must be one mail address per entry, e.g. ada@example.com or Ada <ada@example.com>' });
      });
    }
    if (count > MAX_RECIPIENTS) ctx.addIssue({ code: 'custom', path: ['to'], message: `to, cc and bcc name ${count} recipients; at most ${MAX_RECIPIENTS} per message` });
    let bytes = 0;
    (inputs.attachments ?? []).forEach((attachment, i) => {
      if (attachment.encoding === 'base64') {
        const compact = attachment.content.replace(/\s+/g, '');
        if (compact.length % 4 !== 0 || !BASE64.test(compact)) ctx.addIssue({ code: 'custom', path: ['attachments', i, 'content'], message: 'is not valid base64' });
        bytes += Buffer.byteLength(compact, 'base64');
      } else bytes += Buffer.byteLength(attachment.content, 'utf8');
    });
    if (bytes > MAX_ATTACHMENT_BYTES) {
      ctx.addIssue({ code: 'custom', path: ['attachments'], message: `hold ${bytes} bytes in all; at most ${MAX_ATTACHMENT_BYTES} (1 MiB) per message` });
    }
  });

// Derived once: every SMTP connector type shares the schema.
const SMTP_SENSITIVE = sensitivePaths(smtpSchema);

export type SmtpInputs = z.output<typeof smtpSchema>;

const RECIPIENT_FIELDS = ['to', 'cc', 'bcc'] as const;
type RecipientField = (typeof RECIPIENT_FIELDS)[number];

/** What `invoke` returns. */
export interface SmtpSendResult {
  /** The Message-ID header sent, e.g. `<tc-0f3a…@example.com>`: the same on every attempt of one `connection`. */
  message_id: string;
  /** Envelope recipients the server accepted. */
  accepted: string[];
  /** Envelope recipients the server refused while it took the message for the others. */
  rejected: string[];
  /** The server's last answer, e.g. `250 2.0.0 Ok: queued as …`. */
  response: string;
}

/** What `introspect` returns: what the server says of itself in its greeting and its EHLO answer. */
export interface SmtpIntrospection {
  /** `host:port` as connected to. */
  server: string;
  security: Security;
  /** Whether the session was encrypted when EHLO was answered (after STARTTLS, or from the start). */
  encrypted: boolean;
  /** The TLS version negotiated, e.g. `TLSv1.3`; none for plain SMTP. */
  tls_version?: string;
  /** The extensions of the EHLO answer as the server wrote them, e.g. `PIPELINING`, `SIZE 10240000`, `AUTH PLAIN LOGIN`. */
  extensions: string[];
  /** The login mechanisms offered, e.g. `PLAIN`, `LOGIN`. */
  auth_mechanisms: string[];
  /** Largest message the server takes (SIZE), in bytes; none when it names no limit. */
  max_size_bytes?: number;
}

function list(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

/** The address of a mailbox that holds exactly one (no groups, no lists), else undefined. */
function addressOf(mailboxText: string): string | undefined {
  const parsed = addressparser(mailboxText);
  if (parsed.length !== 1) return undefined;
  const [only] = parsed;
  if ('group' in only && only.group) return undefined;
  const address = (only as addressparser.Address).address;
  return typeof address === 'string' && /^[^\s@]+@[^\s@]+$/.test(address) ? address : undefined;
}

function oneAddress(mailboxText: string): boolean {
  return addressOf(mailboxText) !== undefined;
}

/**
 * ASCII letters lower-cased, nothing else: `toLowerCase()` folds look-alikes into them (KELVIN SIGN
 * into `k`), while the envelope keeps them (a domain goes out as its punycode), so a pattern matched
 * after full folding would admit a recipient in another domain.
 */
function asciiLower(text: string): string {
  return text.replace(/[A-Z]+/g, (letters) => letters.toLowerCase());
}

/** `*@example.com` as a regular expression: `*` is any run of characters except `@`, everything else literal. */
function patternRegex(pattern: string): RegExp {
  const body = asciiLower(pattern)
    .split('*')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('[^@]*');
  return new RegExp(`^${body}$`);
}

/**
 * The first recipient that `allowed_recipients` does not allow, as `to[1]`, or undefined. Recipients
 * are checked where a workflow may change them (an override of `to` is how mail gets misdirected),
 * before any connection is opened.
 */
function refusedRecipient(inputs: SmtpInputs): { field: string; address: string } | undefined {
  if (inputs.allowed_recipients === undefined) return undefined;
  const patterns = inputs.allowed_recipients.map(patternRegex);
  for (const field of RECIPIENT_FIELDS) {
    const entries = list(inputs[field]);
    const givenAsList = Array.isArray(inputs[field]);
    for (let i = 0; i < entries.length; i++) {
      const address = asciiLower(addressOf(entries[i]) ?? '');
      if (!patterns.some((pattern) => pattern.test(address))) return { field: givenAsList ? `${field}[${i}]` : field, address };
    }
  }
  return undefined;
}

function portOf(inputs: { port?: unknown; security?: unknown }): number {
  if (typeof inputs.port === 'number') return inputs.port;
  const security = (SECURITY as readonly unknown[]).includes(inputs.security) ? (inputs.security as Security) : 'starttls';
  return DEFAULT_PORTS[security];
}

/**
 * Where a call goes, for binding the password to that server: `host:port`, and how TLS decides who can
 * read the bytes, in the form the SQL types use: `mail.example.com:25` (plain SMTP), `…:587 starttls`,
 * `…:465 tls`, `…=no-verify` (certificates not verified), ` ca=sha256:<16 hex digits>` (another CA).
 * A server in the path reads a password sent in clear or over TLS it may fake.
 */
export function smtpDestination(inputs: Record<string, unknown>): string | undefined {
  if (typeof inputs.host !== 'string') return undefined;
  const security = inputs.security === undefined ? 'starttls' : inputs.security;
  if (!(SECURITY as readonly unknown[]).includes(security)) return undefined;
  const address = `${inputs.host.toLowerCase()}:${String(inputs.port ?? portOf({ security }))}`;
  if (security === 'plain') return address;
  const tls = (typeof inputs.tls === 'object' && inputs.tls !== null ? inputs.tls : {}) as { reject_unauthorized?: unknown; ca?: unknown };
  if (tls.reject_unauthorized === false) return `${address} ${security}=no-verify`;
  return typeof tls.ca === 'string' ? `${address} ${security} ca=sha256:${createHash('sha256').update(tls.ca).digest('hex').slice(0, 16)}` : `${address} ${security}`;
}

/** `SMTP mail.example.com:587`: which server, for messages. Never the user or anything of the message. */
function describeServer(inputs: SmtpInputs): string {
  return `SMTP ${inputs.host}:${portOf(inputs)}`;
}

function connectionOptions(inputs: SmtpInputs): SMTPConnection.Options {
  const connectMs = parseDurationMs(inputs.connect_timeout) ?? DEFAULT_CONNECT_TIMEOUT_MS;
  return {
    host: inputs.host,
    port: portOf(inputs),
    secure: inputs.security === 'tls',
    // starttls: upgrade before anything else, and refuse a server that does not offer it, so a
    // server in the path cannot strip STARTTLS from the EHLO answer and read the login.
    requireTLS: inputs.security === 'starttls',
    ignoreTLS: inputs.security === 'plain',
    tls: inputs.security === 'plain' ? undefined : { rejectUnauthorized: inputs.tls?.reject_unauthorized ?? true, ...(inputs.tls?.ca && { ca: inputs.tls.ca }), minVersion: 'TLSv1.2' },
    connectionTimeout: connectMs,
    greetingTimeout: connectMs,
    dnsTimeout: connectMs,
    socketTimeout: parseDurationMs(inputs.timeout) ?? DEFAULT_TIMEOUT_MS,
    // A relay on the same host (`localhost`) is what `plain` is for.
    allowInternalNetworkInterfaces: true,
    logger: false,
    debug: false,
  } as SMTPConnection.Options;
}

/** An open session, with the one way out that every path takes. */
interface Session {
  connection: SMTPConnection;
  /** Sends QUIT when the session is healthy, then closes the socket in any case. */
  end(): void;
}

/**
 * Connects (and, for `starttls`, upgrades) with the activity's cancellation honoured: an abort closes
 * the socket and rejects with the abort's reason. Every later step of the call goes through `step`.
 */
async function open(inputs: SmtpInputs, ctx: InvokeContext): Promise<Session> {
  if (ctx.signal.aborted) throw ctx.signal.reason;
  const connection = new SMTPConnection(connectionOptions(inputs));
  // Errors after the call is over (a late reset) must not crash the worker.
  connection.on('error', () => undefined);
  const session: Session = {
    connection,
    end() {
      if (connection.destroyed) return;
      try {
        if (connection.stage === 'connected' && !connection.destroyed) connection.quit();
      } finally {
        // QUIT's answer is not waited for: the message is in the server's hands, and the socket must not outlive the call.
        setTimeout(() => connection.close(), 1_000).unref();
      }
    },
  };
  await step(session, ctx, (done) => connection.connect((err) => done(err ?? null)));
  return session;
}

/**
 * Runs one step of the session (connect, login, send) as a promise. It ends with the step's own
 * callback, or with an error or the end of the connection, which nodemailer reports as events and
 * not always to the callback; the activity's cancellation closes the socket and wins over anything
 * the step reports afterwards.
 */
function step<T = void>(session: Session, ctx: InvokeContext, run: (done: (err: Error | null, value?: T) => void) => void): Promise<T> {
  const { connection } = session;
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const onAbort = () => finish(ctx.signal.reason);
    const onError = (err: Error) => finish(err);
    const onEnd = () => finish(Object.assign(new Error('the connection was closed'), { code: 'ECONNECTION' }));
    const finish = (err: unknown, value?: T) => {
      if (settled) return;
      settled = true;
      ctx.signal.removeEventListener('abort', onAbort);
      connection.removeListener('error', onError);
      connection.removeListener('end', onEnd);
      if (ctx.signal.aborted) {
        connection.close();
        reject(ctx.signal.reason);
      } else if (err) reject(err);
      else resolve(value as T);
    };
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    connection.on('error', onError);
    connection.on('end', onEnd);
    try {
      run((err, value) => finish(err, value));
    } catch (err) {
      finish(err);
    }
  });
}

async function login(session: Session, inputs: SmtpInputs, ctx: InvokeContext): Promise<void> {
  if (!inputs.auth) return;
  if (!session.connection.allowsAuth) {
    throw permanentFailure(
      FailureType.External,
      `${describeServer(inputs)} offers no login (AUTH) over this ${inputs.security === 'plain' ? 'plain' : 'encrypted'} connection, so the call was not made` +
        (inputs.security === 'plain' ? ': servers rarely take a password without TLS; use security starttls or tls' : ''),
    );
  }
  const { user, password } = inputs.auth;
  await step(session, ctx, (done) => session.connection.login({ user, pass: password }, (err) => done(err ?? null)));
}

/** The text of a server's answer for a message: one line, at most 300 characters. */
function serverSaid(response: unknown): string {
  if (typeof response !== 'string') return '';
  const line = response.replace(/\s+/g, ' ').trim();
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}

type SmtpError = SMTPConnection.SMTPError & { originalCode?: string };

/** A certificate or handshake failure: a retry meets the same certificate, so it is not transient. */
function isTlsFailure(code: string | undefined): boolean {
  return /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ERR_SSL|HOSTNAME|EPROTO/.test(code ?? '');
}

/**
 * nodemailer's errors as failures: a refused login names the user (the runner adds the connector),
 * 4xx answers are retryable and 5xx permanent, as SMTP means them; no answer at all is the network's.
 * Messages carry the server's answer (the runner redacts every secret of the call from it), never
 * nodemailer's own text, which may quote the message or the envelope.
 */
function smtpFailure(err: unknown, inputs: SmtpInputs): ApplicationFailure {
  const e = (err ?? {}) as SmtpError;
  const server = describeServer(inputs);
  const code = e.code;
  const cause = e.originalCode ?? code;
  const status = typeof e.responseCode === 'number' ? e.responseCode : undefined;
  const said = serverSaid(e.response);
  const details = { code, ...(status !== undefined && { response_code: status }), ...(e.command && { command: e.command }) };

  if (code === 'EAUTH') {
    if (status !== undefined && status >= 400 && status < 500) {
      return transientFailure(FailureType.External, `${server} could not check the login of user ${inputs.auth?.user} right now (${said})`, { details });
    }
    return permanentFailure(FailureType.AuthRefused, `${server} refused the login of user ${inputs.auth?.user}${said ? ` (${said})` : ''}: check the user and password`, details);
  }
  if (code === 'ETLS' || isTlsFailure(cause)) {
    const why = isTlsFailure(cause) ? describeNetworkError({ code: cause }) : `the server did not accept STARTTLS${said ? ` (${said})` : ''}`;
    return permanentFailure(FailureType.External, `${server}: TLS could not be set up, so nothing was sent: ${why}`, details);
  }
  if (code === 'ETIMEDOUT' || cause === 'ETIMEDOUT') {
    const connectMs = parseDurationMs(inputs.connect_timeout) ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const silenceMs = parseDurationMs(inputs.timeout) ?? DEFAULT_TIMEOUT_MS;
    return transientFailure(FailureType.Timeout, `${server} did not answer in time (connect_timeout ${connectMs} ms, timeout ${silenceMs} ms)`, { details });
  }
  if (status !== undefined) {
    const what = `${server} answered ${e.command ? `${e.command} ` : ''}with ${said || status}`;
    if (status >= 400 && status < 500) return transientFailure(FailureType.External, `${what} (a temporary refusal: retried)`, { details });
    if (status >= 500) return permanentFailure(FailureType.External, what, details);
  }
  if (code === 'EMESSAGE') return permanentFailure(FailureType.External, `${server} does not take the message: it is larger than the SIZE the server announced`, details);
  if (code === 'EENVELOPE') return permanentFailure(FailureType.InvalidInput, `SMTP: the envelope is not usable (check from, to, cc and bcc)`, details);
  if (cause && cause !== code) return transientFailure(FailureType.Network, `${server} failed: ${describeNetworkError({ code: cause })}`, { details: { ...details, code: cause } });
  if (code === 'ECONNECTION' || code === 'ESOCKET' || code === 'EDNS' || code === 'ECONNRESET') {
    return transientFailure(FailureType.Network, `${server} failed: the connection was closed before the server's answer arrived`, { details });
  }
  return transientFailure(FailureType.External, `${server} failed${code ? ` (${code})` : ''}`, { details });
}

/** The failure for `err`, or the activity's cancellation as it is (Temporal must see it). */
function failureOf(err: unknown, inputs: SmtpInputs, ctx: InvokeContext): unknown {
  if (ctx.signal.aborted) return ctx.signal.reason;
  if (err instanceof ApplicationFailure) return err;
  return smtpFailure(err, inputs);
}

/**
 * The Message-ID of a call: `<tc-…@domain of from>` from the `connection`'s idempotency key, so that
 * every attempt sends the same one; undefined outside a workflow (nodemailer then makes a random one).
 */
function messageIdOf(inputs: SmtpInputs, ctx: InvokeContext): string | undefined {
  if (!ctx.idempotencyKey) return undefined;
  const domain = (addressOf(inputs.from ?? '') ?? '').split('@')[1] || 'temporal-connectors.invalid';
  return `<${ctx.idempotencyKey}@${domain}>`;
}

function mailOf(inputs: SmtpInputs, messageId: string | undefined): Mail.Options {
  return {
    from: inputs.from,
    replyTo: inputs.reply_to,
    to: inputs.to,
    cc: inputs.cc,
    bcc: inputs.bcc,
    subject: inputs.subject,
    text: inputs.text,
    html: inputs.html,
    messageId,
    attachments: (inputs.attachments ?? []).map((a) => ({
      filename: a.filename,
      content: a.encoding === 'base64' ? Buffer.from(a.content.replace(/\s+/g, ''), 'base64') : a.content,
      ...(a.content_type && { contentType: a.content_type }),
      ...(a.content_id && { cid: a.content_id }),
    })),
    // Defence in depth: the schema gives only strings and buffers, and a message must never make the
    // worker read one of its files or fetch a URL.
    disableFileAccess: true,
    disableUrlAccess: true,
  };
}

async function send(inputs: SmtpInputs, ctx: InvokeContext): Promise<SmtpSendResult> {
  if (!inputs.from) throw permanentFailure(FailureType.InvalidInput, 'SMTP: from is required to send a message', { issues: [{ path: 'from', message: 'required' }] });
  if (RECIPIENT_FIELDS.every((field) => list(inputs[field]).length === 0)) {
    throw permanentFailure(FailureType.InvalidInput, 'SMTP: to, cc or bcc must name at least one recipient', { issues: [{ path: 'to', message: 'required' }] });
  }
  const refused = refusedRecipient(inputs);
  if (refused) {
    throw permanentFailure(
      FailureType.InvalidInput,
      `SMTP: ${refused.field} (${refused.address}) is not among the connector's allowed_recipients (${inputs.allowed_recipients!.join(', ')}), so nothing was sent`,
      { issues: [{ path: refused.field, message: 'not among allowed_recipients' }] },
    );
  }
  const node = new MailComposer(mailOf(inputs, messageIdOf(inputs, ctx))).compile();
  // Bcc stays in the envelope and out of the headers (MimeNode drops it unless told to keep it).
  const envelope = node.getEnvelope();
  // Once more on the envelope as it will be sent (nodemailer's parsing, its punycode): what the server
  // gets must match, not only what the inputs seemed to say.
  if (inputs.allowed_recipients !== undefined) {
    const patterns = inputs.allowed_recipients.map(patternRegex);
    const stray = envelope.to.find((address) => !patterns.some((pattern) => pattern.test(asciiLower(address))));
    if (stray !== undefined) {
      throw permanentFailure(
        FailureType.InvalidInput,
        `SMTP: the envelope recipient ${stray} (as sent, from to, cc or bcc) is not among the connector's allowed_recipients (${inputs.allowed_recipients.join(', ')}), so nothing was sent`,
        { issues: [{ path: 'to', message: 'not among allowed_recipients' }] },
      );
    }
  }
  const raw = await node.build();
  const messageId = node.messageId();
  const started = Date.now();
  return withHeartbeats(ctx, HEARTBEAT_INTERVAL_MS, async () => {
    let session: Session | undefined;
    try {
      session = await open(inputs, ctx);
      await login(session, inputs, ctx);
      const info = await step<SMTPConnection.SentMessageInfo>(session, ctx, (done) =>
        session!.connection.send({ from: envelope.from || '', to: envelope.to }, raw, (err, sent) => done(err, sent)),
      );
      return { message_id: messageId, accepted: info.accepted, rejected: info.rejected, response: serverSaid(info.response) };
    } catch (err) {
      throw failureOf(err, inputs, ctx);
    } finally {
      session?.end();
    }
  }, () => ({ running_ms: Date.now() - started }));
}

async function testSmtp(inputs: SmtpInputs, ctx: InvokeContext): Promise<ConnectionTestResult> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const server = describeServer(inputs);
  let session: Session | undefined;
  try {
    session = await open(inputs, ctx);
    await login(session, inputs, ctx);
    const over = session.connection.secure ? `over ${inputs.security === 'tls' ? 'TLS' : 'STARTTLS'}` : 'over plain SMTP';
    const latency = elapsed();
    const who = inputs.auth ? `accepted the login of user ${inputs.auth.user}` : 'answered (no login configured)';
    return { ok: true, message: `${server} ${who} ${over} in ${latency} ms`, latency_ms: latency };
  } catch (err) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    const failure = err instanceof ApplicationFailure ? err : smtpFailure(err, inputs);
    return { ok: false, message: `${failure.message}.`, latency_ms: elapsed() };
  } finally {
    session?.end();
  }
}

/** The EHLO answer's extensions, login mechanisms and size limit. */
function parseEhlo(response: string): Pick<SmtpIntrospection, 'extensions' | 'auth_mechanisms' | 'max_size_bytes'> {
  // The first line greets (`250-mail.example.com Hello`); the others are extensions.
  const lines = response
    .split(/\r?\n/)
    .map((line) => line.replace(/^\d{3}[ -]?/, '').trim())
    .filter(Boolean)
    .slice(1);
  const auth = lines.find((line) => /^AUTH[ =]/i.test(line));
  const size = lines.map((line) => /^SIZE\s+(\d+)/i.exec(line)).find(Boolean);
  const maxSize = size ? Number(size[1]) : 0;
  return {
    extensions: lines,
    auth_mechanisms: auth ? auth.slice(5).trim().split(/\s+/).map((m) => m.toUpperCase()) : [],
    ...(maxSize > 0 && { max_size_bytes: maxSize }),
  };
}

async function introspectSmtp(inputs: SmtpInputs, ctx: InvokeContext): Promise<SmtpIntrospection> {
  let session: Session | undefined;
  try {
    session = await open(inputs, ctx);
    const { connection } = session;
    // Right after connecting, the last answer is the EHLO answer (the second one, after STARTTLS).
    const ehlo = typeof connection.lastServerResponse === 'string' ? connection.lastServerResponse : '';
    const socket = connection._socket as { getProtocol?: () => string | null } | undefined;
    const tlsVersion = connection.secure ? socket?.getProtocol?.() : undefined;
    return {
      server: `${inputs.host}:${portOf(inputs)}`,
      security: inputs.security,
      encrypted: connection.secure,
      ...(tlsVersion && { tls_version: tlsVersion }),
      ...parseEhlo(ehlo),
    };
  } catch (err) {
    throw failureOf(err, inputs, ctx);
  } finally {
    session?.end();
  }
}

/** `send to 3 recipients, 1 attachment`: counts only. Addresses and subjects are personal data, and summaries are listed and searched in the Web UI. */
export function describeSmtpCall(inputs: Record<string, unknown>): string | undefined {
  const count = (value: unknown) => (typeof value === 'string' ? 1 : Array.isArray(value) ? value.length : 0);
  const recipients = RECIPIENT_FIELDS.reduce((n, field: RecipientField) => n + count(inputs[field]), 0);
  const attachments = count(inputs.attachments);
  return `send to ${recipients} recipient${recipients === 1 ? '' : 's'}${attachments > 0 ? `, ${attachments} attachment${attachments === 1 ? '' : 's'}` : ''}`;
}

/** The SMTP connector type. It keeps no pools: each call opens one connection and closes it. */
export const smtpConnector: ConnectorType<typeof smtpSchema> = {
  name: 'SMTP',
  description: 'Sends mail over SMTP (STARTTLS, TLS, or plain for a local relay) with a login; the same Message-ID on every attempt of one call.',
  schema: smtpSchema,
  // Marked on the fields of smtpSchema (`sensitive`), and derived from there.
  sensitive: SMTP_SENSITIVE,
  invoke: send,
  test: testSmtp,
  introspect: introspectSmtp,
  describeCall: describeSmtpCall,
  secretForms(inputs) {
    if (!inputs.auth) return [];
    const { user, password } = inputs.auth;
    // As the password travels in AUTH PLAIN and AUTH LOGIN: a server that echoes the exchange is redacted of them too.
    return [Buffer.from(`\0${user}\0${password}`, 'utf8').toString('base64'), Buffer.from(password, 'utf8').toString('base64')];
  },
  destination: smtpDestination,
};
