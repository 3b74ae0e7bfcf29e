import type { ClusterMessage } from '../cluster/envelope.js';
import { MESSAGE_FIELD } from './redis-keys.js';

/**
 * What a node's stream entry holds: one field (`m`) with the JSON message, and where it goes.
 * Appending is the StreamAppender's job.
 */

const KINDS = new Set(['command', 'reply', 'broadcast', 'evict', 'nodeLeft']);

export function encodeMessage(message: ClusterMessage): string {
  return JSON.stringify(message);
}

/** The message of a raw JSON string, or null when it is not one of the envelope kinds. */
export function decodeMessage(raw: unknown): ClusterMessage | null {
  if (typeof raw !== 'string' && !Buffer.isBuffer(raw)) return null;
  let value: unknown;
  try {
    value = JSON.parse(raw.toString());
  } catch {
    return null;
  }
  if (value === null || typeof value !== 'object') return null;
  const kind = (value as { kind?: unknown }).kind;
  return typeof kind === 'string' && KINDS.has(kind) ? (value as ClusterMessage) : null;
}

/** The message of a stream entry's field list (`[field, value, ...]`), or null. */
export function decodeEntryFields(fields: unknown): ClusterMessage | null {
  if (!Array.isArray(fields)) return null;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (String(fields[i]) === MESSAGE_FIELD) return decodeMessage(fields[i + 1]);
  }
  return null;
}

/** A stream entry: id and field list (null when the entry was trimmed or deleted meanwhile). */
export interface StreamEntry {
  id: string;
  fields: unknown[] | null;
}

/**
 * Entries of an XREAD/XREADGROUP reply for one stream (the first one the reply names). Accepts
 * the RESP2 shape `[[key, entries]]`, the flattened RESP3 map `[key, entries]` and a RESP3
 * object `{ key: entries }`.
 */
export function entriesOf(reply: unknown): StreamEntry[] {
  for (const entries of entriesByStream(reply).values()) return entries;
  return [];
}

/** Entries of an XREAD/XREADGROUP reply by stream key (the shapes of {@link entriesOf}). */
export function entriesByStream(reply: unknown): Map<string, StreamEntry[]> {
  const byStream = new Map<string, StreamEntry[]>();
  if (reply === null || reply === undefined) return byStream;
  if (Array.isArray(reply)) {
    if (Array.isArray(reply[0])) {
      for (const item of reply as unknown[][]) byStream.set(String(item[0]), toEntries(item[1]));
    } else {
      for (let i = 0; i + 1 < reply.length; i += 2) byStream.set(String(reply[i]), toEntries(reply[i + 1]));
    }
  } else if (typeof reply === 'object') {
    for (const [key, entries] of Object.entries(reply as Record<string, unknown>)) byStream.set(key, toEntries(entries));
  }
  return byStream;
}

function toEntries(entries: unknown): StreamEntry[] {
  if (!Array.isArray(entries)) return [];
  return entries.map((entry) => {
    const [id, fields] = entry as [unknown, unknown];
    return { id: String(id), fields: Array.isArray(fields) ? fields : null };
  });
}

/** Field/value pairs of a RESP2 flat array or a RESP3 object, as a plain object. */
export function pairsOf(value: unknown): Record<string, unknown> {
  if (Array.isArray(value)) {
    const result: Record<string, unknown> = {};
    for (let i = 0; i + 1 < value.length; i += 2) result[String(value[i])] = value[i + 1];
    return result;
  }
  return value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : {};
}
