/**
 * The longest timeout a call may be given: 24 hours. Timers cannot wait longer than 2^31-1 ms
 * (Node fires them at once instead), and no charge point answers a call a day later.
 */
export const MAX_CALL_TIMEOUT_MS = 24 * 60 * 60 * 1000;

/** Why `value` is not a usable call timeout (a positive integer of ms up to the maximum), or null. */
export function callTimeoutProblem(value: unknown): string | null {
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0 || value > MAX_CALL_TIMEOUT_MS) {
    return `must be an integer from 1 to ${MAX_CALL_TIMEOUT_MS} (24 h), got ${String(value)}`;
  }
  return null;
}
