/** A bad value in the sample's environment: start-up stops and names the variable. */
export class InvalidEnvironmentError extends Error {
  readonly code = 'InvalidEnvironment';

  constructor(
    readonly variable: string,
    reason: string,
  ) {
    super(`${variable} ${reason}`);
    this.name = 'InvalidEnvironmentError';
  }
}

/** setTimeout's ceiling: a larger delay fires at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

const DECIMAL_INTEGER = /^[0-9]+$/;

/**
 * `env[name]` as an integer within [min, max], or undefined when unset or empty. Only plain
 * decimal digits count: `Number()` would also take " 5", "0x10", "1e3" and "" (0).
 */
export function integerFromEnv(env: NodeJS.ProcessEnv, name: string, { min, max }: { min: number; max: number }): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const value = DECIMAL_INTEGER.test(raw) ? Number(raw) : Number.NaN;
  if (!(value >= min && value <= max)) {
    throw new InvalidEnvironmentError(name, `must be a decimal integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return value;
}
