import { groupBy } from '../cluster/group-by.js';
import { InvalidOptionsError, OcppClusterError } from '../protocol/errors.js';

/**
 * Where everything lives in Redis. Every key carries a hash tag so that the keys a script or a
 * transaction touches together always share one Redis Cluster slot:
 *
 * | key                                 | type   | slot          |
 * | ----------------------------------- | ------ | ------------- |
 * | `<prefix>{n:<node>}:alive`          | string | node          | liveness token, short TTL
 * | `<prefix>{n:<node>}:stream`         | stream | node          | the node's inbox (group `inbox`): commands, evictions
 * | `<prefix>{n:<node>}:replies`        | stream | node          | answers to the node's own calls (group `inbox`)
 * | `<prefix>{n:<node>}:owned`          | set    | node          | identities the node claimed
 * | `<prefix>{n:<node>}:cap`            | string | node          | the node's inbox cap (its `streamMaxLen`)
 * | `<prefix>{n:<node>}:takeover`       | string | node          | lock of the survivor draining it
 * | `<prefix>{n:<node>}:holder`         | string | node          | token of the process whose lease the node's inbox belongs to (fencing)
 * | `<prefix>{n:<node>}:probe`          | string | node          | readiness write probe, short TTL
 * | `<prefix>{p:<identity>}`            | hash   | identity      | node, epoch, protocol, connectedAt
 * | `<prefix>{p:<identity>}:epoch`      | string | identity      | epoch counter
 * | `<prefix>{p:<identity>}:parked`     | list   | identity      | commands waiting for it to connect (`deliverWithinMs`)
 * | `<prefix>nodes`                     | zset   | its own       | node registry (score: last refresh)
 * | `<prefix>broadcast`                 | pubsub | (any shard)   | cluster-wide fan-out channel
 */

/** A name refused before it reaches a Redis key (hash-tag braces, glob or control characters, too long). */
export class InvalidKeyPartError extends OcppClusterError {
  readonly code = 'OCPP_INVALID_KEY_PART';
  constructor(
    readonly kind: 'identity' | 'nodeId',
    readonly value: string,
    readonly reason: string,
  ) {
    super(`${kind} ${JSON.stringify(value.slice(0, 64))} cannot be used in a Redis key: ${reason}`);
  }
}

/** Consumer group every node reads its own inbox and replies streams through (one consumer per node: the node id). */
export const INBOX_GROUP = 'inbox';
/** Field of a stream entry that holds the JSON message. */
export const MESSAGE_FIELD = 'm';

export const DEFAULT_PREFIX = 'ocpp-cluster:';
/** Generous upper bound; the gateway applies the real identity rules (48 characters by default). */
export const MAX_KEY_PART_LENGTH = 256;

// Braces would move the hash tag; glob characters would break SCAN/KEYS patterns; control,
// format and separator characters forge log lines and keys that print alike.
const FORBIDDEN_KEY_CHARACTERS = /[\p{Cc}\p{Cf}\p{Z}\s{}*?[\]\\]/u;

/** Null when `part` can be embedded in a key, otherwise why not. */
export function keyPartProblem(part: string): string | null {
  if (typeof part !== 'string' || part.length === 0) return 'empty';
  if (part.length > MAX_KEY_PART_LENGTH) return `longer than ${MAX_KEY_PART_LENGTH} characters`;
  const bad = FORBIDDEN_KEY_CHARACTERS.exec(part);
  if (bad) {
    const code = bad[0].codePointAt(0) ?? 0;
    return `forbidden character U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
  }
  return null;
}

function checked(kind: 'identity' | 'nodeId', part: string): string {
  const problem = keyPartProblem(part);
  if (problem) throw new InvalidKeyPartError(kind, String(part), problem);
  return part;
}

/** Validates the key prefix option (it must not contain a hash tag of its own). */
export function validatePrefix(prefix: unknown): string {
  if (typeof prefix !== 'string') throw new InvalidOptionsError('prefix', 'must be a string');
  if (prefix.length > 64) throw new InvalidOptionsError('prefix', 'must be at most 64 characters');
  if (/[{}]/.test(prefix)) throw new InvalidOptionsError('prefix', 'must not contain "{" or "}" (it would change the hash tag)');
  if (FORBIDDEN_KEY_CHARACTERS.test(prefix)) {
    throw new InvalidOptionsError('prefix', 'must not contain whitespace, control or glob characters');
  }
  return prefix;
}

export class RedisKeys {
  readonly registry: string;
  readonly broadcastChannel: string;

  constructor(readonly prefix: string = DEFAULT_PREFIX) {
    validatePrefix(prefix);
    this.registry = `${prefix}nodes`;
    this.broadcastChannel = `${prefix}broadcast`;
  }

  /** Throws `InvalidKeyPartError` for a node id that cannot be part of a key. */
  nodeId(nodeId: string): string {
    return checked('nodeId', nodeId);
  }

  /** Throws `InvalidKeyPartError` for an identity that cannot be part of a key. */
  identity(identity: string): string {
    return checked('identity', identity);
  }

  private nodeTag(nodeId: string): string {
    return `${this.prefix}{n:${checked('nodeId', nodeId)}}`;
  }

  alive(nodeId: string): string {
    return `${this.nodeTag(nodeId)}:alive`;
  }

  stream(nodeId: string): string {
    return `${this.nodeTag(nodeId)}:stream`;
  }

  /**
   * Answers to the node's own calls, apart from its inbox so that commands waiting on slow
   * charge points never hold them back. Same hash tag: one XREADGROUP reads both.
   */
  replies(nodeId: string): string {
    return `${this.nodeTag(nodeId)}:replies`;
  }

  /**
   * The cap on the node's inbox (commands not yet handled), written by the node itself with its
   * heartbeat: writers refuse commands against the owner's cap, not their own.
   */
  inboxCap(nodeId: string): string {
    return `${this.nodeTag(nodeId)}:cap`;
  }

  /**
   * How many more commands than entries the node's inbox holds unacknowledged: each entry packing
   * k commands adds k - 1 when appended and takes it off when acknowledged, so that the cap counts
   * commands, not entries (PACKED_COMMANDS_VERSION).
   */
  inboxPacked(nodeId: string): string {
    return `${this.nodeTag(nodeId)}:packed`;
  }

  owned(nodeId: string): string {
    return `${this.nodeTag(nodeId)}:owned`;
  }

  /**
   * The token of the process the node's inbox belongs to. It outlives the liveness key: a
   * takeover overwrites it, so a process whose key lapsed can tell a Redis stall (still its
   * own) from being taken over (someone else's) before it serves anything again.
   */
  holder(nodeId: string): string {
    return `${this.nodeTag(nodeId)}:holder`;
  }

  /** A node's keys as the heartbeat and the clean-up scripts take them: alive, stream, owned, replies, cap. */
  nodeKeys(nodeId: string): [string, string, string, string, string] {
    return [this.alive(nodeId), this.stream(nodeId), this.owned(nodeId), this.replies(nodeId), this.inboxCap(nodeId)];
  }

  /** A node's keys as NODE_CLEANUP takes them: {@link nodeKeys}, then its packed-commands count. */
  cleanupKeys(nodeId: string): string[] {
    return [...this.nodeKeys(nodeId), this.inboxPacked(nodeId)];
  }

  /** Written by the readiness probe: proves that Redis takes writes. */
  probe(nodeId: string): string {
    return `${this.nodeTag(nodeId)}:probe`;
  }

  takeoverLock(nodeId: string): string {
    return `${this.nodeTag(nodeId)}:takeover`;
  }

  presence(identity: string): string {
    return `${this.prefix}{p:${checked('identity', identity)}}`;
  }

  presenceEpoch(identity: string): string {
    return `${this.presence(identity)}:epoch`;
  }

  /** Commands parked until the charge point connects (`deliverWithinMs`), in parking order. */
  parked(identity: string): string {
    return `${this.presence(identity)}:parked`;
  }
}

// CRC16/XMODEM (polynomial 0x1021), the checksum Redis Cluster hashes keys with.
const CRC16_TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

export function crc16(data: Uint8Array): number {
  let crc = 0;
  for (const byte of data) crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ byte) & 0xff];
  return crc;
}

/** The part of a key Redis Cluster hashes: the first non-empty `{...}` section, else the whole key. */
export function hashTagOf(key: string): string {
  const open = key.indexOf('{');
  if (open === -1) return key;
  const close = key.indexOf('}', open + 1);
  if (close === -1 || close === open + 1) return key;
  return key.slice(open + 1, close);
}

/** The Redis Cluster slot (0..16383) of `key`, as `CLUSTER KEYSLOT` computes it. */
export function keySlot(key: string): number {
  return crc16(Buffer.from(hashTagOf(key), 'utf8')) % 16384;
}

/** Groups items by the slot of their key, keeping the input order inside each group. */
export function groupBySlot<T>(items: readonly T[], keyOf: (item: T) => string): Map<number, T[]> {
  return groupBy(items, (item) => keySlot(keyOf(item)));
}
