/**
 * How deep a payload may nest. OCPP schemas nest a few levels; JSON.stringify overflows the stack
 * somewhere in the thousands (5,000 levels did), which surfaced as an unrelated error (a cluster
 * outage) wherever the payload was serialized first. 100 leaves free-form data (DataTransfer)
 * plenty of room.
 */
export const MAX_PAYLOAD_DEPTH = 100;

/**
 * Why `payload` cannot be sent as JSON, or null: nested deeper than MAX_PAYLOAD_DEPTH (a cycle
 * counts as too deep) or holding a BigInt. Walks iteratively, so the check itself cannot overflow
 * the stack; what JSON.stringify skips or converts (undefined, functions, toJSON) is left to it.
 */
export function payloadEncodingProblem(payload: unknown): string | null {
  if (typeof payload === 'bigint') return BIGINT;
  if (!isWalked(payload)) return null;
  // Only objects to walk are stacked: a flat payload (most calls) costs one frame, no tuple per field.
  const stack: Array<[value: object, depth: number]> = [[payload, 1]];
  let entry: [object, number] | undefined;
  while ((entry = stack.pop()) !== undefined) {
    const [value, depth] = entry;
    if (depth > MAX_PAYLOAD_DEPTH) return `payload nests deeper than ${MAX_PAYLOAD_DEPTH} levels (or is circular)`;
    const children = Array.isArray(value) ? value : Object.values(value);
    for (const child of children) {
      if (typeof child === 'bigint') return BIGINT;
      if (isWalked(child)) stack.push([child, depth + 1]);
    }
  }
  return null;
}

const BIGINT = 'payload holds a BigInt, which JSON cannot carry';

/** An object JSON.stringify walks into (one with toJSON is converted instead). */
function isWalked(value: unknown): value is object {
  return value !== null && typeof value === 'object' && typeof (value as { toJSON?: unknown }).toJSON !== 'function';
}
