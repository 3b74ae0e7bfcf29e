import type { ClusterMessage } from '../cluster/envelope.js';
import { MESSAGE_FIELD } from './redis-keys.js';

/**
 * What a node's stream entry holds: one field (`m`) with the JSON message, or (replies to a node
 * that reads them so, `REPLY_BATCH_VERSION`) a JSON array of messages. Appending is the
 * StreamAppender's job.
 */

const KINDS = new Set(['command', 'reply', 'broadcast', 'evict', 'nodeLeft', 'deliverParked']);

export function encodeMessage(message: ClusterMessage): string {
  return JSON.stringify(message);
}

/** Several messages in one entry (only for a reader of `REPLY_BATCH_VERSION` or newer). */
export function encodeMessages(messages: readonly ClusterMessage[]): string {
  return JSON.stringify(messages);
}

function asMessage(value: unknown): ClusterMessage | null {
  if (value === null || typeof value !== 'object') return null;
  const kind = (value as { kind?: unknown }).kind;
  return typeof kind === 'string' && KINDS.has(kind) ? (value as ClusterMessage) : null;
}

function parsed(raw: unknown): unknown {
  if (typeof raw !== 'string' && !Buffer.isBuffer(raw)) return undefined;
  try {
    return JSON.parse(raw.toString());
  } catch {
    return undefined;
  }
}

/** The message of a raw JSON string, or null when it is not one of the envelope kinds. */
export function decodeMessage(raw: unknown): ClusterMessage | null {
  return asMessage(parsed(raw));
}

function messageField(fields: unknown): unknown {
  if (!Array.isArray(fields)) return undefined;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (String(fields[i]) === MESSAGE_FIELD) return fields[i + 1];
  }
  return undefined;
}

/** The message of a stream entry's field list (`[field, value, ...]`), or null (a batch entry too). */
export function decodeEntryFields(fields: unknown): ClusterMessage | null {
  return decodeMessage(messageField(fields));
}

/**
 * The messages of a stream entry, one or a batch, in order; null when the entry holds none or any
 * of them is not an envelope (the entry is malformed as a whole).
 */
export function decodeEntryMessages(fields: unknown): ClusterMessage[] | null {
  const value = parsed(messageField(fields));
  if (!Array.isArray(value)) {
    const message = asMessage(value);
    return message ? [message] : null;
  }
  if (value.length === 0) return null;
  for (const item of value) if (!asMessage(item)) return null;
  return value as ClusterMessage[];
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
