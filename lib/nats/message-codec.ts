import type { ClusterMessage } from '../cluster/envelope.js';

const KINDS = new Set(['command', 'reply', 'broadcast', 'evict', 'nodeLeft']);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeNatsMessage(message: ClusterMessage): Uint8Array {
  return encoder.encode(JSON.stringify(message));
}

/** The envelope in a NATS payload, or null when it is not one of the envelope kinds. */
export function decodeNatsMessage(data: Uint8Array): ClusterMessage | null {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(data));
  } catch {
    return null;
  }
  if (value === null || typeof value !== 'object') return null;
  const kind = (value as { kind?: unknown }).kind;
  return typeof kind === 'string' && KINDS.has(kind) ? (value as ClusterMessage) : null;
}
