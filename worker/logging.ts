// Structured logs: one JSON object per line, with every secret this process has resolved redacted.
// Loaded by the activities too (they feed `secretRedactions`), so nothing here imports the heavy
// Temporal worker runtime at the top: the CLI's `test` and `introspect` must stay light.
import type { LogLevel, LogMetadata, Logger } from '@temporalio/common';
import type { RuntimeOptions } from '@temporalio/worker';
import { types } from 'node:util';
import { LOG_LEVELS } from '../core/config';
import { secretRedactions, type SecretRedactions } from '../core/redaction';

// The levels in increasing severity, and `TC_LOG_LEVEL`'s parser: the configuration owns them.
export { LOG_LEVELS, parseLogLevel } from '../core/config';

export { SecretRedactions, secretRedactions, type SecretRedactionsOptions } from '../core/redaction';

/** Anything lines can be written to; `process.stderr`, a file stream, or a test's collector. */
export interface LogStream {
  write(chunk: string): unknown;
}

/** Options of {@link JsonLogger}. */
export interface JsonLoggerOptions {
  /** Lowest level written. Default: `INFO`. */
  level?: LogLevel;
  /** Where lines go. Default: `process.stderr`. */
  stream?: LogStream;
  /** Secrets redacted from every line. Default: the process-wide {@link secretRedactions}. */
  redactions?: SecretRedactions;
}

/** Where Temporal passes the time of an entry (nanoseconds, bigint) in `meta`: `LogTimestamp` of @temporalio/worker. */
const LOG_TIMESTAMP = Symbol.for('log_timestamp');
/** Keys of every line; meta keys with these names are written as `meta_<name>` rather than overwriting them. */
const RESERVED_KEYS = new Set(['time', 'level', 'message']);
const MAX_DEPTH = 8;

/**
 * A Temporal `Logger` that writes one JSON object per line: `{"time","level","message",...meta}`.
 * Every string in the entry (message, meta keys and values, error messages and stacks) is redacted
 * of every secret in {@link secretRedactions}, and then the whole line once more, so a secret split
 * across fields is caught too. Errors are written as `{ name, message }` (plus `type` for Temporal
 * failures), with their stack and cause only when the logger's level is DEBUG or TRACE. Byte arrays
 * are written as their length, never their content: they may be payloads, and bytes cannot be
 * redacted as text.
 */
export class JsonLogger implements Logger {
  readonly level: LogLevel;
  private readonly severity: number;
  private readonly stream: LogStream;
  private readonly redactions: SecretRedactions;

  constructor(options: JsonLoggerOptions = {}) {
    this.level = options.level ?? 'INFO';
    this.severity = LOG_LEVELS.indexOf(this.level);
    if (this.severity < 0) throw new TypeError(`log level must be one of ${LOG_LEVELS.join(', ')}; got ${String(this.level)}`);
    this.stream = options.stream ?? process.stderr;
    this.redactions = options.redactions ?? secretRedactions;
  }

  /** True when entries at `level` are written. */
  isEnabled(level: LogLevel): boolean {
    return LOG_LEVELS.indexOf(level) >= this.severity;
  }

  log(level: LogLevel, message: string, meta?: LogMetadata): void {
    if (!this.isEnabled(level)) return;
    // A logger must never throw into the code that logs (an activity, the SDK's poll loop).
    try {
      let line: string;
      try {
        line = this.format(level, message, meta);
      } catch (err) {
        // Say that an entry was lost, and why.
        line = this.format('ERROR', 'log entry could not be written', { level, error: err });
      }
      this.stream.write(`${line}\n`);
    } catch {
      // Nowhere left to report it: the stream itself failed.
    }
  }

  trace(message: string, meta?: LogMetadata): void {
    this.log('TRACE', message, meta);
  }

  debug(message: string, meta?: LogMetadata): void {
    this.log('DEBUG', message, meta);
  }

  info(message: string, meta?: LogMetadata): void {
    this.log('INFO', message, meta);
  }

  warn(message: string, meta?: LogMetadata): void {
    this.log('WARN', message, meta);
  }

  error(message: string, meta?: LogMetadata): void {
    this.log('ERROR', message, meta);
  }

  private format(level: LogLevel, message: string, meta: LogMetadata | undefined): string {
    // Stacks only when the logger runs at DEBUG or TRACE: they are long, and name the code, not the problem.
    const withStacks = this.severity <= LOG_LEVELS.indexOf('DEBUG');
    const redact = (text: string) => this.redactions.redact(text);
    const entry: Record<string, unknown> = { time: entryTime(meta), level, message: redact(String(message)) };
    if (meta) {
      const seen = new WeakSet<object>([meta]);
      for (const [key, value] of Object.entries(meta)) {
        const clean = toJsonValue(value, { redact, withStacks, seen }, 1);
        if (clean === undefined) continue;
        const name = redact(key);
        entry[RESERVED_KEYS.has(name) ? `meta_${name}` : name] = clean;
      }
    }
    const line = JSON.stringify(entry);
    // The whole line once more, for a secret that only appears across fields. Should that replacement
    // break the JSON (a secret spanning a quote, say), the entry is withheld rather than written broken.
    const redacted = redact(line);
    if (redacted === line || isJson(redacted)) return redacted;
    return JSON.stringify({ time: entry.time, level, message: 'log entry withheld: it matched a secret across its JSON fields' });
  }
}

interface JsonContext {
  redact(text: string): string;
  withStacks: boolean;
  seen: WeakSet<object>;
}

function entryTime(meta: LogMetadata | undefined): string {
  const nanos: unknown = meta?.[LOG_TIMESTAMP];
  if (typeof nanos === 'bigint') return new Date(Number(nanos / 1_000_000n)).toISOString();
  return new Date().toISOString();
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** A JSON-safe, redacted copy of `value`; undefined for what JSON leaves out (functions, symbols). */
function toJsonValue(value: unknown, ctx: JsonContext, depth: number): unknown {
  switch (typeof value) {
    case 'string':
      return ctx.redact(value);
    case 'number':
    case 'bigint': {
      // A numeric secret (a PIN, an account number) is a number here, and must not be written as one.
      const text = String(value);
      const clean = ctx.redact(text);
      if (clean !== text || typeof value === 'bigint' || !Number.isFinite(value)) return clean;
      return value;
    }
    case 'boolean':
      return value;
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined;
  }
  if (value === null) return null;
  const object = value as object;
  if (ctx.seen.has(object)) return '[Circular]';
  if (depth > MAX_DEPTH) return '[…]';
  ctx.seen.add(object);
  try {
    // isNativeError too: errors from the workflow sandbox are of another realm, not `instanceof Error` here.
    if (object instanceof Error || types.isNativeError(object)) return errorToJson(object as Error, ctx, depth);
    if (object instanceof ArrayBuffer || ArrayBuffer.isView(object)) return `[${(object as ArrayBuffer).byteLength} bytes]`;
    if (object instanceof Date) return Number.isNaN(object.getTime()) ? 'Invalid Date' : object.toISOString();
    if (Array.isArray(object)) return object.map((v) => toJsonValue(v, ctx, depth + 1) ?? null);
    if (object instanceof Set) return [...object].map((v) => toJsonValue(v, ctx, depth + 1) ?? null);
    if (!(object instanceof Map) && typeof (object as { toJSON?: unknown }).toJSON === 'function') {
      return toJsonValue((object as { toJSON(): unknown }).toJSON(), ctx, depth + 1);
    }
    const entries: [unknown, unknown][] = object instanceof Map ? [...object] : Object.entries(object);
    const out: Record<string, unknown> = {};
    for (const [key, child] of entries) {
      const clean = toJsonValue(child, ctx, depth + 1);
      if (clean !== undefined) out[ctx.redact(String(key))] = clean;
    }
    return out;
  } finally {
    // Only ancestors count as circular: the same object twice side by side is written twice.
    ctx.seen.delete(object);
  }
}

function errorToJson(err: Error, ctx: JsonContext, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = { name: ctx.redact(String(err.name)), message: ctx.redact(String(err.message)) };
  // Temporal failures carry a type callers switch on (`Connector.External.Http`): worth a field of its own.
  const type = (err as { type?: unknown }).type;
  if (typeof type === 'string') out.type = ctx.redact(type);
  if (ctx.withStacks && typeof err.stack === 'string') out.stack = ctx.redact(err.stack);
  if (ctx.withStacks && err.cause !== undefined) out.cause = toJsonValue(err.cause, ctx, depth + 1);
  return out;
}

/** Options of {@link installJsonLogging}. */
export interface JsonLoggingOptions {
  /** Lowest level written. Default: `INFO`. */
  level?: LogLevel;
  /** Where lines go. Default: `process.stderr`. */
  stream?: LogStream;
  /**
   * Further options of the Temporal Runtime, which can be installed only once per process (metrics,
   * shutdown signals). Default: none. Unless `telemetryOptions.logging` is given, the SDK's native
   * (Rust) logs are forwarded to the JSON logger too, at WARN and above (at `level` when that is
   * DEBUG or TRACE), so that no plain-text line reaches stderr.
   */
  runtimeOptions?: Omit<RuntimeOptions, 'logger'>;
}

let installedLogger: JsonLogger | undefined;

/**
 * Makes the Temporal Runtime log through a {@link JsonLogger}: the SDK's own lines, Activity and
 * Workflow context loggers (`log` of @temporalio/activity and @temporalio/workflow, which the SDK
 * funnels into the Runtime logger) and, forwarded, the native core's lines.
 *
 * Call it before anything creates the Runtime: the first `NativeConnection.connect`, `Worker.create`
 * or `Runtime.instance()`. Returns true when the JSON logger is the Runtime's logger (also when an
 * earlier call installed it; that call's options stay), false when the Runtime already existed and
 * so keeps its own logger.
 */
export function installJsonLogging(options: JsonLoggingOptions = {}): boolean {
  if (installedLogger) return true;
  // Loaded here, not at the top: the activities import this module, and the CLI loads those without a worker.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Runtime } = require('@temporalio/worker') as typeof import('@temporalio/worker');
  const level = options.level ?? 'INFO';
  const logger = new JsonLogger({ level, stream: options.stream });
  const runtimeOptions = options.runtimeOptions ?? {};
  const telemetryOptions = runtimeOptions.telemetryOptions ?? {};
  // Core's INFO is chatty (every poller); WARN is the SDK's own default for it.
  const coreLevel: LogLevel = level === 'INFO' ? 'WARN' : level;
  try {
    Runtime.install({
      ...runtimeOptions,
      logger,
      telemetryOptions: { ...telemetryOptions, logging: telemetryOptions.logging ?? { filter: { core: coreLevel, other: 'ERROR' }, forward: {} } },
    });
  } catch (err) {
    // Runtime.install throws IllegalStateError once a Runtime exists; its logger cannot be replaced then.
    if ((err as Error)?.name === 'IllegalStateError') return false;
    throw err;
  }
  installedLogger = logger;
  return true;
}
