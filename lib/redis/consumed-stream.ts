import { BoundedSet } from '../cluster/bounded-set.js';
import { compareStreamIds, nextStreamId } from './stream-ids.js';

/** How many handled entry ids are remembered to skip duplicates on a pending re-read. */
const HANDLED_MEMORY = 20_000;

/**
 * What a consumer tracks for one of the streams it reads (a node reads its inbox and its
 * replies stream). Entry ids are only unique inside one stream, so each keeps its own.
 */
export class ConsumedStream {
  /** Cursor while re-reading our own pending entries; null once on new entries. */
  pendingCursor: string | null = '0';
  /** Id of the newest entry read with `>`: everything after it is unread. */
  lastReadId: string | null = null;
  readonly inFlight = new Set<string>();
  ackQueue: string[] = [];
  /**
   * Inbox entries read here and not acknowledged yet that pack several commands: their commands but
   * one (see INBOX_ACK). Their sum is the part of the inbox's packed count this reader holds.
   */
  readonly packedExtra = new Map<string, number>();
  lastTrimAt = 0;
  trimTimer: NodeJS.Timeout | null = null;
  /**
   * Recently handled ids. A re-read of our pending entries must not run them again, even when
   * its reply (blocking connection) overtakes the XACK reply (writer connection).
   */
  private readonly handled = new BoundedSet<string>(HANDLED_MEMORY);

  constructor(readonly key: string) {}

  isKnown(id: string): boolean {
    return this.inFlight.has(id) || this.handled.has(id);
  }

  /** Queues the XACK of `id` and remembers it as handled. */
  markHandled(id: string): void {
    this.handled.add(id);
    this.ackQueue.push(id);
  }

  /** After a read from `cursor` returned `lastId` (undefined: nothing). */
  advance(cursor: string | null, lastId: string | undefined): void {
    if (cursor !== null) {
      // A resync() during the read restarted the re-read: keep its cursor.
      if (this.pendingCursor === cursor) this.pendingCursor = lastId ?? null;
    } else if (lastId !== undefined) {
      this.lastReadId = lastId;
    }
  }

  /**
   * The oldest id still needed (XTRIM MINID keeps entries >= it): nothing in flight, awaiting its
   * XACK or unread goes. Null while our pending entries are being re-read, or before any read.
   */
  trimThreshold(): string | null {
    if (this.pendingCursor !== null || this.lastReadId === null) return null;
    let threshold = nextStreamId(this.lastReadId);
    for (const id of this.inFlight) if (compareStreamIds(id, threshold) < 0) threshold = id;
    for (const id of this.ackQueue) if (compareStreamIds(id, threshold) < 0) threshold = id;
    return threshold;
  }

  /** Forgets everything unacknowledged (abort: it stays pending in Redis). */
  forget(): void {
    this.ackQueue = [];
    this.packedExtra.clear();
    this.handled.clear();
    this.cancelTrim();
  }

  cancelTrim(): void {
    if (this.trimTimer) clearTimeout(this.trimTimer);
    this.trimTimer = null;
  }
}
