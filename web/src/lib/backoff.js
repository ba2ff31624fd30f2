// Reconnect delays: exponential growth, capped, with "equal jitter" (half fixed, half random),
// so that many clients dropped at once by a server restart do not all return in the same
// millisecond, yet none waits longer than the cap.

/** Default schedule: 250 ms, 500 ms, 1 s, 2 s, 4 s, then 8 s at most (before jitter). */
export const BACKOFF = Object.freeze({ baseMs: 250, capMs: 8000 });

/**
 * The delay before reconnect attempt `attempt` (0 for the first retry).
 * @param {number} attempt
 * @param {() => number} random a source of numbers in [0, 1)
 * @param {{baseMs: number, capMs: number}} schedule
 */
export function backoffDelay(attempt, random = Math.random, schedule = BACKOFF) {
  const exp = Math.min(schedule.capMs, schedule.baseMs * 2 ** Math.min(attempt, 30));
  return exp / 2 + random() * (exp / 2);
}
