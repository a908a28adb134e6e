// The one way a duration is written in this product: milliseconds as a number, or a string such as
// `500ms`, `30s`, `2m` or `1h`. Connector inputs, connector retry and timeout defaults and per-call
// options all take it, and Temporal's own duration strings accept every form it allows.
import { z } from 'zod';

const DURATION_PATTERN = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$/;
const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const;

/** What a refused duration is told. */
export const DURATION_MESSAGE = "must be milliseconds or a duration such as '500ms', '30s', '2m' or '1h'";

/**
 * A duration in milliseconds: a number is already milliseconds, a string is a duration such as
 * `'500ms'`, `'30s'`, `'2m'` or `'1h'`. Undefined when the value is not a positive duration.
 */
export function parseDurationMs(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value > 0 ? value : undefined;
  const match = typeof value === 'string' ? DURATION_PATTERN.exec(value) : null;
  if (!match) return undefined;
  const ms = Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
  return ms > 0 ? Math.round(ms) : undefined;
}

/** A duration as an input: positive milliseconds, or a duration string (see {@link parseDurationMs}). */
export const durationSchema = z.union([
  z.number().positive({ message: DURATION_MESSAGE }),
  z.string().refine((value) => parseDurationMs(value) !== undefined, { message: DURATION_MESSAGE }),
]);
