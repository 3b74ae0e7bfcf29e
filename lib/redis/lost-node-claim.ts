import type { LostNodeClaim, LostNodeFinish, PendingEntry } from '../cluster/event-adapter.interface.js';
import { acknowledgeInboxEntries } from './inbox-acknowledgement.js';
import { NODE_CLEANUP, TOKEN_REFRESH, TOKEN_RELEASE } from './lua-scripts.js';
import type { NodeLiveness } from './node-liveness.js';
import type { PresenceStore } from './presence-store.js';
import type { RedisConnectionPool } from './redis-connection-pool.js';
import { INBOX_GROUP, type RedisKeys } from './redis-keys.js';
import { decodeEntryMessages, entriesOf, type StreamEntry } from './stream-publisher.js';

/** Stale presence entries removed between two checks that the lost node is still lost. */
const STALE_REMOVALS_PER_CHECK = 100;

export interface LostNodeClaimDeps {
  keys: RedisKeys;
  pool: RedisConnectionPool;
  liveness: NodeLiveness;
  presence: PresenceStore;
  /** Entries read per batch. */
  batchSize: number;
  lockTtlMs: number;
}

/**
 * A stream entry being settled: acknowledged once every message it holds is (an entry may pack
 * several commands). Kept for the claim's life, so a re-read of the pending list (a `more` pass)
 * hands out only what is left, as delivered as it was when first read.
 */
interface EntryProgress {
  readonly entryId: string;
  readonly delivered: boolean;
  readonly messages: number;
  readonly settled: Set<number>;
}

/** One message of a lost node's inbox entry (an unreadable entry is one null message). */
interface StreamPendingEntry extends PendingEntry {
  readonly progress: EntryProgress;
  readonly index: number;
}

/**
 * The Redis half of a takeover, held under the lock `{n:<lost>}:takeover` (see
 * node-loss-primitives.ts for how it is taken): reads the lost node's inbox through its consumer
 * group AS the lost node's own consumer, so that what is left unacknowledged stays exactly where
 * a restart of that node looks; first what it had read (its pending list), then what it never
 * read. Before every batch it checks that the node is still lost, this node still steady and the
 * lock still ours. Deciding what to do with each entry is the cluster layer's (node-loss.ts).
 */
export class RedisLostNodeClaim implements LostNodeClaim {
  /** '0': the pending list (read before), then null: entries never delivered ('>'). */
  private cursor: string | null = '0';
  private groupReady = false;
  /** Entries handed out and not yet acknowledged, by id. */
  private readonly progress = new Map<string, EntryProgress>();

  constructor(
    readonly nodeId: string,
    private readonly lockToken: string,
    private readonly deps: LostNodeClaimDeps,
  ) {}

  async stillHeld(): Promise<boolean> {
    const { keys, pool, liveness, lockTtlMs } = this.deps;
    const lockKey = keys.takeoverLock(this.nodeId);
    return (
      liveness.isSteady() &&
      !(await liveness.isAliveNow(this.nodeId)) &&
      (await TOKEN_REFRESH.run(pool.pick(lockKey), [lockKey], [this.lockToken, lockTtlMs])) === 1
    );
  }

  async next(): Promise<PendingEntry[] | null> {
    const { keys, pool, batchSize } = this.deps;
    const streamKey = keys.stream(this.nodeId);
    const client = pool.pick(streamKey);
    if (!(await this.ensureGroup())) return [];
    for (;;) {
      if (!(await this.stillHeld())) return null;
      const reader = client as unknown as { xreadgroup(...args: Array<string | number>): Promise<unknown> };
      const entries = entriesOf(await reader.xreadgroup('GROUP', INBOX_GROUP, this.nodeId, 'COUNT', batchSize, 'STREAMS', streamKey, this.cursor ?? '>'));
      if (entries.length === 0) {
        if (this.cursor === null) return [];
        this.cursor = null;
        continue;
      }
      const delivered = this.cursor !== null;
      if (this.cursor !== null) this.cursor = entries[entries.length - 1].id;
      const pending = entries.flatMap((entry) => this.messagesOf(entry, delivered));
      if (pending.length > 0) return pending;
    }
  }

  /** The messages of `entry` not settled yet in this claim, each a PendingEntry. */
  private messagesOf(entry: StreamEntry, delivered: boolean): StreamPendingEntry[] {
    const messages = entry.fields ? decodeEntryMessages(entry.fields) : null;
    let progress = this.progress.get(entry.id);
    if (!progress) {
      progress = { entryId: entry.id, delivered, messages: messages?.length ?? 1, settled: new Set() };
      this.progress.set(entry.id, progress);
    }
    const known = progress;
    if (!messages) return known.settled.has(0) ? [] : [{ progress: known, index: 0, delivered: known.delivered, message: null }];
    return messages.flatMap((message, index) => (known.settled.has(index) ? [] : [{ progress: known, index, delivered: known.delivered, message }]));
  }

  async settle(entry: PendingEntry): Promise<void> {
    await this.settleMany([entry]);
  }

  /**
   * Marks the messages settled, and acknowledges the entries of which every message now is: one
   * XACK for all of them (INBOX_ACK when some pack several commands, so the inbox's packed count
   * goes down with them).
   */
  async settleMany(entries: readonly PendingEntry[]): Promise<void> {
    const done: EntryProgress[] = [];
    for (const entry of entries) {
      const { progress, index } = entry as StreamPendingEntry;
      progress.settled.add(index);
      if (progress.settled.size === progress.messages && this.progress.delete(progress.entryId)) done.push(progress);
    }
    if (done.length === 0) return;
    const { keys, pool } = this.deps;
    const streamKey = keys.stream(this.nodeId);
    const extra = new Map(done.map((progress) => [progress.entryId, progress.messages - 1]));
    await acknowledgeInboxEntries(pool.pick(streamKey), streamKey, keys.inboxPacked(this.nodeId), INBOX_GROUP, [...extra.keys()], (id) => extra.get(id)!);
  }

  /**
   * Deletes presence entries that still name the lost node (node and epoch compared in Lua),
   * then its keys, only while it is still lost and nothing is left unread in its inbox (its
   * replies stream goes unread: the calls they answer died with it), then its registry entry.
   */
  async finish(): Promise<LostNodeFinish> {
    const { keys, pool } = this.deps;
    const presenceRemoved = await this.removeStalePresence();
    const cleaned = Number(await NODE_CLEANUP.run(pool.pick(keys.stream(this.nodeId)), keys.cleanupKeys(this.nodeId), [INBOX_GROUP]));
    if (cleaned === 0) return { status: 'returned', presenceRemoved };
    if (cleaned !== 1) {
      this.cursor = '0';
      return { status: 'more', presenceRemoved };
    }
    await pool.pick(keys.registry).zrem(keys.registry, this.nodeId);
    return { status: 'done', presenceRemoved };
  }

  async release(): Promise<void> {
    const lockKey = this.deps.keys.takeoverLock(this.nodeId);
    await TOKEN_RELEASE.run(this.deps.pool.pick(lockKey), [lockKey], [this.lockToken]);
  }

  /** The consumer group exists (created from the start when missing); false when there is no inbox at all. */
  private async ensureGroup(): Promise<boolean> {
    if (this.groupReady) return true;
    const streamKey = this.deps.keys.stream(this.nodeId);
    try {
      await this.deps.pool.pick(streamKey).xgroup('CREATE', streamKey, INBOX_GROUP, '0');
    } catch (error) {
      const message = (error as Error).message;
      if (message.includes('requires the key to exist')) return false;
      if (!message.startsWith('BUSYGROUP')) throw error;
    }
    this.groupReady = true;
    return true;
  }

  private async removeStalePresence(): Promise<number> {
    const { presence, liveness } = this.deps;
    const stale = await presence.listOwned(this.nodeId);
    let removed = 0;
    for (let i = 0; i < stale.length; i += STALE_REMOVALS_PER_CHECK) {
      // A node that was only stalled re-registers its sockets when it comes back: leave them.
      if (await liveness.isAliveNow(this.nodeId)) break;
      removed += await presence.removeMany(stale.slice(i, i + STALE_REMOVALS_PER_CHECK), this.nodeId);
    }
    return removed;
  }
}
