// HTTP header rules shared by the HTTP types (REST, OPENAI, and those after them): what a header name
// and value may be, and the idempotency key a call sends so that a system that honours one drops a
// repeat of the same call.
import { z } from 'zod';
import type { InvokeContext } from './types';

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// CR, LF and NUL would let a value smuggle extra headers.
const HEADER_VALUE = /^[^\r\n\0]*$/;

export const headerName = z.string().regex(HEADER_NAME, { message: 'header names must be HTTP tokens (letters, digits, - and _)' });
export const headerValue = z.string().regex(HEADER_VALUE, { message: 'header values must not contain line breaks or NUL' });

/** True when `headers` has `name`, compared case-insensitively as HTTP does. */
export function hasHeader(headers: Record<string, string>, name: string): boolean {
  const lower = name.toLowerCase();
  return Object.keys(headers).some((key) => key.toLowerCase() === lower);
}

/** The `idempotency_key` input of an HTTP type: a header name, or `false` for none. `sends` says which calls send it. */
export function idempotencyKeyInput(sends: string) {
  return z
    .union([z.literal(false), headerName])
    .optional()
    .meta({
      description:
        `Header that carries an idempotency key on ${sends}, e.g. \`Idempotency-Key\`, or \`false\` for none: the key is derived from the \`connection\` workflow ID, the same on every attempt, re-run and replay of one call and different for every other, so an API that honours it drops a call made twice (a worker that died mid-call, a Temporal outage). A key set in \`headers\` wins. Default: none.`,
      examples: ['Idempotency-Key'],
    });
}

/**
 * Headers to add so that the call carries its idempotency key in `header` (an `idempotency_key`
 * input): none when the input is off, outside a `connection` (the CLI's and API's runs have no
 * workflow ID), or when `headers` already set that header (the caller's own key wins).
 */
export function idempotencyHeaders(header: string | false | undefined, ctx: InvokeContext, headers: Record<string, string> = {}): Record<string, string> {
  return header && ctx.idempotencyKey && !hasHeader(headers, header) ? { [header]: ctx.idempotencyKey } : {};
}
