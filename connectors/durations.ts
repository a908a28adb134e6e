// The one way a duration is written in this product: milliseconds as a number, or a string such as
// `500ms`, `30s`, `2m` or `1h`. Connector inputs, connector retry and timeout defaults and per-call
// options all take it, and Temporal's own duration strings accept every form it allows.
import { z } from 'zod';

const DURATION_PATTERN = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$/;
const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const;

/**
 * The shortest duration there is: 1 ms. Milliseconds are whole numbers wherever a duration is used
 * (timers, Temporal's timeouts, rate periods), so anything shorter would round to 0, which means "no
 * timeout" to some and "fire at once" to others, and a rate period of 0 switches the limit off.
 */
export const MIN_DURATION_MS = 1;

/**
 * The longest duration there is: 2147483647 ms (about 24.8 days), the most Node's timers hold. A
 * longer one is set to 1 ms by Node, with only a warning: a timeout that fires at once.
 */
export const MAX_DURATION_MS = 2_147_483_647;

/** What a duration over {@link MAX_DURATION_MS} is told. */
export const DURATION_TOO_LONG_MESSAGE = 'must be at most 2147483647 ms (about 24 days): a longer timer fires at once';

/** What a refused duration is told. */
export const DURATION_MESSAGE = "must be milliseconds or a duration such as '500ms', '30s', '2m' or '1h'";

/** What a duration under {@link MIN_DURATION_MS} is told. */
export const DURATION_TOO_SHORT_MESSAGE = 'must be at least 1 ms: a shorter duration would round to 0 (no timeout, or no limit)';

/** The milliseconds a value names, unrounded and unchecked; undefined when it is not a duration at all. */
function rawDurationMs(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  const match = typeof value === 'string' ? DURATION_PATTERN.exec(value) : null;
  return match ? Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS] : undefined;
}

/**
 * A duration in milliseconds, rounded to whole ones: a number is already milliseconds, a string is a
 * duration such as `'500ms'`, `'30s'`, `'2m'` or `'1h'`. Undefined when the value is not a duration
 * from 1 ms ({@link MIN_DURATION_MS}) to about 24 days ({@link MAX_DURATION_MS}).
 */
export function parseDurationMs(value: unknown): number | undefined {
  const ms = rawDurationMs(value);
  return ms !== undefined && ms >= MIN_DURATION_MS && ms <= MAX_DURATION_MS ? Math.round(ms) : undefined;
}

/**
 * A duration as an input: milliseconds, or a duration string (see {@link parseDurationMs}), from 1 ms
 * to about 24 days. The issue says which is wrong: the form, or a value out of that range.
 */
export const durationSchema = z.union([
  z.number().min(MIN_DURATION_MS, { message: DURATION_TOO_SHORT_MESSAGE }).max(MAX_DURATION_MS, { message: DURATION_TOO_LONG_MESSAGE }),
  z.string().superRefine((value, ctx) => {
    const ms = rawDurationMs(value);
    if (ms === undefined) ctx.addIssue({ code: 'custom', message: DURATION_MESSAGE });
    else if (ms < MIN_DURATION_MS) ctx.addIssue({ code: 'custom', message: DURATION_TOO_SHORT_MESSAGE });
    else if (ms > MAX_DURATION_MS) ctx.addIssue({ code: 'custom', message: DURATION_TOO_LONG_MESSAGE });
  }),
]);
