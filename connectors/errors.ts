import { ApplicationFailure } from '@temporalio/common';

import { FailureType, type FailureTypeName } from '../workflows/failures';

export { FailureType, type FailureTypeName };

/** A failure no retry can fix: bad input, a missing connector or secret. */
export function permanentFailure(type: FailureTypeName, message: string, details?: unknown): ApplicationFailure {
  return ApplicationFailure.create({ type, message, nonRetryable: true, details: details === undefined ? [] : [details] });
}

/** A failure worth retrying, optionally after `nextRetryDelayMs` (a server's Retry-After). */
export function transientFailure(
  type: FailureTypeName,
  message: string,
  options: { details?: unknown; nextRetryDelayMs?: number } = {},
): ApplicationFailure {
  return ApplicationFailure.create({
    type,
    message,
    nonRetryable: false,
    details: options.details === undefined ? [] : [options.details],
    nextRetryDelay: options.nextRetryDelayMs,
  });
}

/** HTTP statuses that a retry may fix (408, 409, 429 and 5xx); other 4xx are the caller's fault. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 409 || status === 429 || status >= 500;
}

/**
 * `Retry-After` in milliseconds: delta-seconds or an HTTP date. Undefined when absent, unusable or
 * not in the future: then the retry policy's own backoff applies (a zero delay would end retries).
 */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  const ms = /^\d+(\.\d+)?$/.test(trimmed) ? Math.round(Number(trimmed) * 1000) : Date.parse(trimmed) - now;
  return Number.isFinite(ms) && ms > 0 ? ms : undefined;
}

/**
 * The failure for an HTTP answer outside 2xx. `what` says which call, e.g. `REST POST http://host/path`,
 * and must not contain secrets (no query string with keys, no credentials in the URL).
 */
export function httpStatusFailure(what: string, status: number, statusText: string, retryAfter?: string | null) {
  const message = `${what} answered HTTP ${status}${statusText ? ` ${statusText}` : ''}`;
  const details = { status };
  if (!isRetryableStatus(status)) return permanentFailure(FailureType.Http, message, details);
  return transientFailure(FailureType.Http, message, { details, nextRetryDelayMs: parseRetryAfter(retryAfter) });
}

const NETWORK_SENTENCES: Record<string, string> = {
  ECONNREFUSED: 'the connection was refused: nothing listens at that address and port',
  ECONNRESET: 'the connection was reset by the other side',
  EPIPE: 'the connection was closed by the other side',
  ENOTFOUND: 'the host name could not be resolved (DNS)',
  EAI_AGAIN: 'the host name could not be resolved right now (temporary DNS failure)',
  ETIMEDOUT: 'the connection timed out',
  ECONNABORTED: 'the connection was aborted',
  EHOSTUNREACH: 'the host is unreachable',
  ENETUNREACH: 'the network is unreachable',
  CERT_HAS_EXPIRED: 'the server certificate has expired',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'the server certificate is self-signed and not trusted',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'the server certificate could not be verified',
  UND_ERR_CONNECT_TIMEOUT: 'the connection timed out',
  UND_ERR_HEADERS_TIMEOUT: 'the server did not answer in time',
  UND_ERR_BODY_TIMEOUT: 'the server stopped sending its answer',
  UND_ERR_SOCKET: 'the connection was closed unexpectedly',
};

/** The driver's error code, looking through `cause` chains (fetch and undici wrap them). */
export function errorCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/** A plain sentence for a network error code, e.g. for connection tests. */
export function describeNetworkError(err: unknown): string {
  const code = errorCode(err);
  if (code && NETWORK_SENTENCES[code]) return `${NETWORK_SENTENCES[code]} (${code})`;
  if ((err as Error)?.name === 'TimeoutError') return 'the call timed out';
  return code ? `network error ${code}` : 'the call failed before an answer arrived';
}

/** The failure for a call that got no HTTP answer. Retryable: these are usually transient. */
export function networkFailure(what: string, err: unknown): ApplicationFailure {
  const timedOut = (err as Error)?.name === 'TimeoutError' || /TIMEOUT|ETIMEDOUT/.test(errorCode(err) ?? '');
  return transientFailure(timedOut ? FailureType.Timeout : FailureType.Network, `${what} failed: ${describeNetworkError(err)}`, {
    details: { code: errorCode(err) },
  });
}
