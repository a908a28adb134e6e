import type { InvokeContext } from './types';

/**
 * Runs `call`, recording a heartbeat every `intervalMs` milliseconds until it settles, so that a long
 * call in an activity task stays alive while a dead worker's is given up within its heartbeat
 * timeout. `details` says what the heartbeat carries (e.g. `{ running_ms }`); default: nothing. The
 * timer is unref'd: it never keeps a process alive on its own.
 */
export async function withHeartbeats<T>(ctx: InvokeContext, intervalMs: number, call: () => Promise<T>, details?: () => unknown): Promise<T> {
  const heartbeats = setInterval(() => (details ? ctx.heartbeat(details()) : ctx.heartbeat()), intervalMs);
  heartbeats.unref();
  try {
    return await call();
  } finally {
    clearInterval(heartbeats);
  }
}
