import { InvalidOptionsError } from '../protocol/errors.js';

/** Default prefix of every stream, bucket and subject (several clusters can share one NATS). */
export const DEFAULT_NATS_PREFIX = 'ocpp-cluster';

/** The durable consumer every node reads its own streams with. */
export const READER = 'reader';

const PREFIX_PATTERN = /^[A-Za-z0-9_-]{1,48}$/;
/** Longest node id: stream names end up as file names on the server (255 bytes). */
const MAX_NODE_ID_BYTES = 96;

/** Why `prefix` cannot name streams, buckets and subjects, or null. */
export function prefixProblem(prefix: unknown): string | null {
  if (typeof prefix !== 'string' || !PREFIX_PATTERN.test(prefix)) return 'must be 1 to 48 characters of A-Z, a-z, 0-9, _ and -';
  return null;
}

/** Why `nodeId` cannot be a node id on NATS, or null. */
export function nodeIdProblem(nodeId: unknown): string | null {
  if (typeof nodeId !== 'string' || nodeId.length === 0) return 'must be a non-empty string';
  if (Buffer.byteLength(nodeId) > MAX_NODE_ID_BYTES) return `must be at most ${MAX_NODE_ID_BYTES} bytes`;
  return null;
}

/**
 * Any string as one token that is valid in a subject, a stream name and a KV key: base64url
 * (A-Z a-z 0-9 - _), so identities and node ids with dots, spaces or wildcards stay apart.
 */
export function token(value: string): string {
  return Buffer.from(value, 'utf8').toString('base64url');
}

export function fromToken(encoded: string): string {
  return Buffer.from(encoded, 'base64url').toString('utf8');
}

/** Every name the NATS transport uses, derived from one prefix. */
export class NatsNames {
  constructor(readonly prefix: string) {
    const problem = prefixProblem(prefix);
    if (problem) throw new InvalidOptionsError('prefix', problem);
  }

  /** KV bucket identity → owner (presence). */
  get presenceBucket(): string {
    return `${this.prefix}-presence`;
  }

  /** KV bucket node id → liveness record (heartbeats, fencing). */
  get nodesBucket(): string {
    return `${this.prefix}-nodes`;
  }

  /** Core NATS subject of cluster-wide messages. */
  get broadcastSubject(): string {
    return `${this.prefix}.broadcast`;
  }

  /** Work-queue stream of one node's commands and evictions. */
  inboxStream(nodeId: string): string {
    return `${this.prefix}-inbox-${token(nodeId)}`;
  }

  inboxSubject(nodeId: string): string {
    return `${this.prefix}.inbox.${token(nodeId)}`;
  }

  /** Work-queue stream of the answers to one node's own calls (read apart from the inbox). */
  repliesStream(nodeId: string): string {
    return `${this.prefix}-replies-${token(nodeId)}`;
  }

  repliesSubject(nodeId: string): string {
    return `${this.prefix}.replies.${token(nodeId)}`;
  }

  /** KV key of an identity or a node id. */
  key(value: string): string {
    return token(value);
  }
}
