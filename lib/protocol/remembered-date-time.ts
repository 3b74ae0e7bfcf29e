import type { Ajv, FormatDefinition } from 'ajv';

/**
 * Makes ajv's `date-time` check remember the last string it accepted. Answers written in the same
 * millisecond carry the same timestamp (a CSMS answering thousands of Heartbeats a second checks
 * `currentTime` once per millisecond, not once per answer); every other string is checked in full,
 * so what passes and what fails is unchanged.
 */
export function rememberLastValidDateTime(ajv: Ajv): void {
  const format = ajv.formats['date-time'] as FormatDefinition<string> | undefined;
  const check = format?.validate;
  if (format === undefined || typeof check !== 'function') return;
  let lastValid: string | null = null;
  const remembering = (value: string): boolean => {
    if (value === lastValid) return true;
    if (!check(value)) return false;
    lastValid = value;
    return true;
  };
  ajv.addFormat('date-time', { ...format, validate: remembering } as FormatDefinition<string>);
}
