import type { JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { LostNodeClaim, LostNodeFinish, PendingEntry } from '../cluster/event-adapter.interface.js';
import { decodeNatsMessage } from './message-codec.js';
import { isRevisionConflict, isStreamNotFound } from './nats-errors.js';
import type { NatsNames } from './nats-names.js';
import type { NatsNodeLiveness, NodeRecord } from './node-liveness.js';
import type { PresenceBucket } from './presence-bucket.js';

export interface NatsLostNodeClaimDeps {
  names: NatsNames;
  nodesKv: () => KV;
  jsm: () => JetStreamManager;
  liveness: NatsNodeLiveness;
  presence: PresenceBucket;
  batchSize: number;
  /** The lost node's key in the nodes bucket, the fence written on it and its revision. */
  key: string;
  fence: NodeRecord;
  revision: number;
  onRelease: () => void;
}

/** A pending entry and the stream sequence it came from (settled by deleting it). */
interface SequencedEntry extends PendingEntry {
  readonly seq: number;
}

/**
 * The NATS half of a takeover, held while the lost node's record is our fence (see
 * node-loss-primitives.ts): hands out the messages left in its inbox stream in order (those its
 * consumer had been delivered first, `delivered`, then those it never read) and deletes each once
 * settled, so a survivor that takes over after us, or the node itself back, never sees it again.
 * Before every batch it checks that the record is still our fence and our own lease still held.
 */
export class NatsLostNodeClaim implements LostNodeClaim {
  private nextSeq = 0;
  private released = false;

  constructor(
    readonly nodeId: string,
    private readonly deps: NatsLostNodeClaimDeps,
  ) {}

  private get stream(): string {
    return this.deps.names.inboxStream(this.nodeId);
  }

  /** The record is still the fence we wrote and our lease holds. */
  async stillHeld(): Promise<boolean> {
    if (this.released || !this.deps.liveness.hasLease()) return false;
    const revision = (await this.deps.nodesKv().get(this.deps.key))?.revision;
    // The lease once more after the read: the lost node rejoins only once we are done or judged dead (lease over).
    return revision === this.deps.revision && this.deps.liveness.hasLease();
  }

  /** Updates our fence (compare-and-set); false when it is not ours any more. */
  async rewriteFence(change: Partial<NodeRecord>): Promise<boolean> {
    const next = { ...this.deps.fence, ...change };
    try {
      this.deps.revision = await this.deps.nodesKv().update(this.deps.key, JSON.stringify(next), this.deps.revision);
      this.deps.fence = next;
      return true;
    } catch (error) {
      if (isRevisionConflict(error)) return false;
      throw error;
    }
  }

  async next(): Promise<PendingEntry[] | null> {
    if (!(await this.stillHeld())) return null;
    const jsm = this.deps.jsm();
    let state;
    try {
      state = (await jsm.streams.info(this.stream)).state;
    } catch (error) {
      if (isStreamNotFound(error)) return [];
      throw error;
    }
    const entries: SequencedEntry[] = [];
    const deliveredSeq = this.deps.fence.deliveredSeq ?? 0;
    for (let seq = Math.max(this.nextSeq, state.first_seq); seq <= state.last_seq && entries.length < this.deps.batchSize; seq++) {
      this.nextSeq = seq + 1;
      const stored = await jsm.streams.getMessage(this.stream, { seq }).catch(() => null);
      if (!stored) continue;
      entries.push({ seq, delivered: seq <= deliveredSeq, message: decodeNatsMessage(stored.data) });
    }
    return entries;
  }

  async settle(entry: PendingEntry): Promise<void> {
    await this.deps
      .jsm()
      .streams.deleteMessage(this.stream, (entry as SequencedEntry).seq, false)
      .catch((error: unknown) => {
        // Deleted already (by a claim before ours): settled all the same.
        if (isStreamNotFound(error)) return;
        if (!/no message found|not found/i.test((error as Error).message)) throw error;
      });
  }

  /**
   * Removes its stale presence, then (only with nothing left in its inbox) its streams; marks the
   * fence done. Deleting the streams after the check is safe because the lost node does not rejoin
   * (make its streams anew) while our fence is not done and we are alive (NatsNodeLiveness.renew).
   */
  async finish(): Promise<LostNodeFinish> {
    const presenceRemoved = await this.removeStalePresence();
    if (!(await this.stillHeld())) return { status: 'returned', presenceRemoved };
    const jsm = this.deps.jsm();
    try {
      if ((await jsm.streams.info(this.stream)).state.messages > 0) {
        this.nextSeq = 0;
        return { status: 'more', presenceRemoved };
      }
    } catch (error) {
      if (!isStreamNotFound(error)) throw error;
    }
    for (const stream of [this.stream, this.deps.names.repliesStream(this.nodeId)]) {
      // Checked again right before: past our lease the node may have judged us dead and rejoined.
      if (!this.deps.liveness.hasLease()) return { status: 'returned', presenceRemoved };
      await jsm.streams.delete(stream).catch((error: unknown) => {
        if (!isStreamNotFound(error)) throw error;
      });
    }
    if (!(await this.rewriteFence({ done: true }))) return { status: 'returned', presenceRemoved };
    return { status: 'done', presenceRemoved };
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    this.deps.onRelease();
  }

  /** Tombstones presence entries that still name the lost node (compare-and-set on node and epoch). */
  private async removeStalePresence(): Promise<number> {
    const { presence } = this.deps;
    let removed = 0;
    for (const record of await presence.listOwned(this.nodeId)) {
      if (!(await this.stillHeld())) break;
      if (await presence.remove(record.identity, this.nodeId, record.epoch)) removed++;
    }
    return removed;
  }
}
