import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { KV, KvEntry } from '@nats-io/kv';
import { FIRST_FREE_SLOT, keptThroughStall, LeaseKeeperThread } from '../cluster/lease-keeper-thread.js';
import type { ClusterLogger } from '../cluster/logger.js';
import { sleep } from '../cluster/time-bounds.js';
import { NodeIdConflictError } from '../protocol/errors.js';
import { isRevisionConflict, isStreamNotFound } from './nats-errors.js';
import { token } from './nats-names.js';

/**
 * A node's record in the nodes bucket. `alive`: heartbeats bump its revision; `left`: the node
 * left cleanly but its inbox still held messages; `taken-over`: a survivor fenced it (`by`) and
 * drains or drained (`done`) its inbox; `deliveredSeq` is how far its inbox had been read.
 */
export interface NodeRecord {
  state: 'alive' | 'left' | 'taken-over';
  token: string;
  ttlMs: number;
  beat: number;
  by?: string;
  done?: boolean;
  deliveredSeq?: number;
  /** Set on heartbeats the lease keeper thread wrote (see NatsLivenessOptions.stallToleranceMs). */
  thread?: 'lease-keeper';
}

/** What happened to this process's lease (as on Redis). */
export type NatsLeaseEvent = 'suspended' | 'resumed' | 'takenOver' | 'conflict' | 'restored';

export interface NatsLivenessOptions {
  kv: () => KV;
  nodeId: string;
  /** How long a node may go without a heartbeat before it counts as dead; beats every third of it. */
  ttlMs: number;
  logger: ClusterLogger;
  onLeaseEvent: (event: NatsLeaseEvent) => void;
  /** How long "is node X alive" answers are reused (default 250 ms). */
  aliveCacheMs?: number;
  /**
   * How long a worker thread (the lease keeper) beats for this node while its event loop does not
   * turn (see LeaseKeeperThread); 0 or absent: no thread. Needs `keeper`.
   */
  stallToleranceMs?: number;
  /** Where the keeper's thread connects: the bucket, a request bound, and connection options as plain data. */
  keeper?: { bucket: string; requestTimeoutMs: number; connection: () => Record<string, unknown> };
}

/** The keeper's slots beyond the shared ones: the record's newest revision either thread wrote, and the send time of the newest answered beat. */
const REVISION_SLOT = FIRST_FREE_SLOT;
const LAST_BEAT_SLOT = FIRST_FREE_SLOT + 1;

export function parseNodeRecord(entry: KvEntry | null): NodeRecord | null {
  if (!entry || entry.operation !== 'PUT') return null;
  try {
    const record = entry.json<NodeRecord>();
    return record && typeof record.token === 'string' && typeof record.state === 'string' ? record : null;
  } catch {
    return null;
  }
}

const encode = (record: NodeRecord): string => JSON.stringify(record);

/**
 * Node liveness on a KV bucket without per-key TTL (nats-server 2.9 has none): the node's record
 * carries a per-process token, and every heartbeat is a compare-and-set on the record's revision
 * (a third of the TTL apart). Readers judge: a node is alive while its revision changed, by the
 * reader's own monotonic clock, less than its TTL ago. Silence is counted only from the moment
 * the reader's own heartbeats have been answered steadily (a NATS outage stops every heartbeat at
 * once and is nobody's death).
 *
 * Fencing: the node's lease runs until the send time of its last answered heartbeat + TTL − a
 * margin, by its own monotonic clock. A reader first sees a revision after it was written, so it
 * judges the node dead no earlier than that same TTL after the heartbeat was sent: the lease is
 * over first. A survivor fences a dead node by a compare-and-set to `taken-over` on the revision
 * it judged silent, so a heartbeat that lands first makes the takeover fail, and a heartbeat after
 * it fails and tells the node it was taken over.
 */
export class NatsNodeLiveness {
  private currentToken = randomUUID();
  /** The record's revision this process last wrote or adopted (while a keeper runs, its slot holds the newest of either thread). */
  private ownRevision = 0;
  /** Send time of the newest answered write of this loop's. */
  private lastBeatSentAt = 0;
  private beats = 0;
  /** How far the previous incarnation's inbox was read, as its record said (kept if acquire() is called again). */
  private inheritedDeliveredSeq: number | undefined;
  private timer: NodeJS.Timeout | null = null;
  private leaseTimer: NodeJS.Timeout | null = null;
  private running = false;
  private held = false;
  private leaseUntil = 0;
  private steadySince = Infinity;
  private lastAnsweredAt = 0;
  private lastRecoveredAt = -Infinity;
  private suspended = false;
  private beating: Promise<void> | null = null;
  /** Per node: the last revision seen and when (performance.now()) it was first seen. */
  private readonly observed = new Map<string, { revision: number; seenAt: number }>();
  private readonly aliveCache = new Map<string, { alive: boolean; at: number }>();
  private readonly intervalMs: number;
  private readonly marginMs: number;
  private readonly aliveCacheMs: number;
  private keeper: LeaseKeeperThread | null = null;
  failures = 0;
  /** Times this event loop ran more than a beat behind while the lease keeper thread kept the lease. */
  keptThroughStalls = 0;
  suspensions = 0;
  takenOver = 0;

  constructor(private readonly options: NatsLivenessOptions) {
    this.intervalMs = Math.max(50, Math.floor(options.ttlMs / 3));
    this.marginMs = Math.max(20, Math.floor(options.ttlMs / 10));
    this.aliveCacheMs = options.aliveCacheMs ?? 250;
  }

  get nodeId(): string {
    return this.options.nodeId;
  }

  get isHeld(): boolean {
    return this.held;
  }

  get ttlMs(): number {
    return this.options.ttlMs;
  }

  hasLease(): boolean {
    return this.held && performance.now() < this.provenUntil();
  }

  /** Until when the record is certainly ours: by this loop's own heartbeat, or by the keeper thread's. */
  private provenUntil(): number {
    return this.keeper === null ? this.leaseUntil : Math.max(this.leaseUntil, this.keeper.keptUntil);
  }

  /** True once this node's heartbeats have been answered promptly for a whole TTL. */
  isSteady(): boolean {
    return performance.now() - this.steadySince >= this.options.ttlMs;
  }

  presenceDoubt(): string | null {
    if (!this.hasLease()) return 'this node cannot prove its lease';
    const now = performance.now();
    if (now - this.lastAnsweredAt > this.intervalMs * 1.5) return 'NATS is not answering promptly';
    if (now - this.lastRecoveredAt < this.options.ttlMs) return 'NATS recovered moments ago; presence may be incomplete';
    return null;
  }

  /** NATS came back from an outage or a loss: presence may be incomplete for a TTL. */
  noteDisturbance(): void {
    this.lastRecoveredAt = performance.now();
  }

  private get key(): string {
    return token(this.options.nodeId);
  }

  /** The revision the next compare-and-set writes on: the newest either thread wrote or adopted. */
  private get revision(): number {
    return this.keeper === null ? this.ownRevision : this.keeper.slot(REVISION_SLOT);
  }

  private set revision(value: number) {
    this.ownRevision = value;
    this.keeper?.setSlot(REVISION_SLOT, value);
  }

  private record(): NodeRecord {
    return { state: 'alive', token: this.currentToken, ttlMs: this.options.ttlMs, beat: this.beats };
  }

  /**
   * Takes the node id. A record of another process that keeps beating means a live holder
   * (`NodeIdConflictError`); one that stays silent for its TTL (a crashed process) is taken over.
   * Returns how far the previous incarnation's inbox had been read, when a survivor recorded it.
   * May be called again after a failure (a write whose answer came too late): our own record is
   * then found and kept, and what the predecessor's said is still returned.
   */
  async acquire(): Promise<{ deliveredSeq?: number }> {
    const kv = this.options.kv();
    for (let attempt = 0; attempt < 20; attempt++) {
      const entry = await kv.get(this.key);
      const existing = parseNodeRecord(entry);
      if (existing?.deliveredSeq !== undefined) this.inheritedDeliveredSeq = existing.deliveredSeq;
      const sentAt = performance.now();
      try {
        if (!existing || !entry) {
          this.revision = await kv.create(this.key, encode(this.record()));
        } else if (existing.state === 'alive' && existing.token !== this.currentToken) {
          // A crashed predecessor stays silent for its TTL; a live one beats meanwhile.
          const waitMs = existing.ttlMs + this.marginMs;
          const deadline = performance.now() + waitMs;
          while (performance.now() < deadline) {
            await sleep(Math.min(this.intervalMs, Math.max(10, deadline - performance.now())));
            const now = await kv.get(this.key);
            if (!now || now.revision !== entry.revision) break;
          }
          const now = await kv.get(this.key);
          if (now && now.revision !== entry.revision) {
            const holder = parseNodeRecord(now);
            if (holder?.state === 'alive') throw new NodeIdConflictError(this.options.nodeId);
            continue;
          }
          this.revision = await kv.update(this.key, encode(this.record()), entry.revision);
        } else {
          this.revision = await kv.update(this.key, encode(this.record()), entry.revision);
        }
      } catch (error) {
        if (isRevisionConflict(error)) continue;
        throw error;
      }
      this.onAnswered(sentAt);
      this.steadySince = performance.now();
      return { deliveredSeq: this.inheritedDeliveredSeq };
    }
    throw new NodeIdConflictError(this.options.nodeId);
  }

  /**
   * A fresh incarnation after being taken over: a new token on the fenced record. Not ok when
   * another process holds the id; `deliveredSeq` is how far the survivor recorded the inbox read.
   * `fencedBy`: a live survivor is still taking this node over (its fence is not done); it deletes
   * the inbox and replies streams when it finishes, so the node must not make them anew before
   * then (they would vanish under it, with what was sent to it) — try again later.
   */
  async renew(): Promise<{ ok: boolean; deliveredSeq?: number; fencedBy?: string }> {
    const kv = this.options.kv();
    this.currentToken = randomUUID();
    for (let attempt = 0; attempt < 20; attempt++) {
      const entry = await kv.get(this.key);
      const existing = parseNodeRecord(entry);
      if (existing?.state === 'alive' && existing.token !== this.currentToken) return { ok: false };
      const survivor = existing?.state === 'taken-over' && !existing.done ? existing.by : undefined;
      if (survivor !== undefined && survivor !== this.options.nodeId) {
        // Our reads are answered: the survivor's silence counts from now (else a node cut off before would wait for ever).
        if (this.steadySince === Infinity) this.steadySince = performance.now();
        if (await this.isAliveNow(survivor)) return { ok: false, fencedBy: survivor };
      }
      const sentAt = performance.now();
      try {
        this.revision = existing && entry ? await kv.update(this.key, encode(this.record()), entry.revision) : await kv.create(this.key, encode(this.record()));
      } catch (error) {
        if (isRevisionConflict(error)) continue;
        throw error;
      }
      this.onAnswered(sentAt);
      this.steadySince = performance.now();
      return { ok: true, deliveredSeq: existing?.deliveredSeq };
    }
    return { ok: false };
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.keeper ??= this.startKeeper();
    if (this.held) this.keeper?.keep(this.currentToken);
    this.schedule();
  }

  stop(): void {
    this.running = false;
    this.keeper?.keep(null);
    if (this.timer) clearTimeout(this.timer);
    if (this.leaseTimer) clearTimeout(this.leaseTimer);
    this.timer = null;
    this.leaseTimer = null;
  }

  /** Stops and forgets the lease without touching NATS (a crash, a conflict). */
  abandon(): void {
    this.stop();
    this.closeKeeper();
    this.held = false;
    this.leaseUntil = 0;
  }

  /** Leaves: `left` when the inbox still holds messages a survivor must answer, else the record goes. */
  async release(inboxEmpty: boolean): Promise<void> {
    this.stop();
    this.closeKeeper();
    const kv = this.options.kv();
    const wasHeld = this.held;
    this.held = false;
    this.leaseUntil = 0;
    if (!wasHeld) return;
    for (let attempt = 0; ; attempt++) {
      try {
        if (inboxEmpty) await kv.delete(this.key, { previousSeq: this.revision });
        else await kv.update(this.key, encode({ ...this.record(), state: 'left' }), this.revision);
        return;
      } catch (error) {
        if (!isRevisionConflict(error) || attempt === 3) throw error;
        // A heartbeat of the keeper thread's may land after it was told to stop: leave from the
        // record as it is now, while it is still ours.
        const entry = await kv.get(this.key);
        const existing = parseNodeRecord(entry);
        if (!entry || existing?.token !== this.currentToken || existing.state !== 'alive') throw error;
        this.revision = entry.revision;
      }
    }
  }

  private startKeeper(): LeaseKeeperThread | null {
    const toleranceMs = this.options.stallToleranceMs ?? 0;
    const settings = this.options.keeper;
    if (toleranceMs <= 0 || settings === undefined) return null;
    const { bucket, requestTimeoutMs } = settings;
    const keeper = LeaseKeeperThread.start({
      script: new URL('./lease-keeper.worker.mjs', import.meta.url),
      data: () => ({ connection: settings.connection(), bucket, key: this.key, requestTimeoutMs, revisionSlot: REVISION_SLOT, lastBeatSlot: LAST_BEAT_SLOT }),
      ...{ intervalMs: this.intervalMs, ttlMs: this.options.ttlMs, marginMs: this.marginMs, toleranceMs, extraSlots: 2, logger: this.options.logger },
    });
    keeper?.setSlot(REVISION_SLOT, this.ownRevision);
    keeper?.setSlot(LAST_BEAT_SLOT, this.lastBeatSentAt);
    return keeper;
  }

  private closeKeeper(): void {
    if (this.keeper === null) return;
    // The keeper's write may be the newest: a clean leave writes on it.
    this.ownRevision = this.keeper.slot(REVISION_SLOT);
    this.keeper.close();
    this.keeper = null;
  }

  private schedule(): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.beat().finally(() => this.schedule());
    }, this.intervalMs);
    this.timer.unref();
  }

  /** One heartbeat now (one at a time). */
  beat(): Promise<void> {
    this.beating ??= this.beatOnce().finally(() => {
      this.beating = null;
    });
    return this.beating;
  }

  private async beatOnce(): Promise<void> {
    if (!this.held) return;
    const kv = this.options.kv();
    const sentAt = performance.now();
    this.beats++;
    try {
      // The KV client bounds the request (its timeout): a stalled server fails the beat.
      this.revision = await kv.update(this.key, encode(this.record()), this.revision, this.options.ttlMs);
      if (this.steadySince === Infinity) this.steadySince = performance.now();
      this.onAnswered(sentAt);
      if (this.suspended) {
        this.suspended = false;
        this.options.onLeaseEvent('resumed');
      }
    } catch (error) {
      if (isRevisionConflict(error)) return this.onRecordChanged();
      this.failures++;
      this.steadySince = Infinity;
      if (isStreamNotFound(error)) this.options.onLeaseEvent('restored');
      this.options.logger.debug?.(`heartbeat failed: ${(error as Error).message}`);
    }
  }

  /** Our compare-and-set lost: somebody else wrote the record (a survivor, another process) or NATS lost it. */
  private async onRecordChanged(): Promise<void> {
    const kv = this.options.kv();
    const entry = await kv.get(this.key).catch(() => undefined);
    if (entry === undefined) return;
    const existing = parseNodeRecord(entry);
    if (!existing || !entry) {
      // The store lost the record (a server restarted without its store): take it back.
      const sentAt = performance.now();
      this.revision = await kv.create(this.key, encode(this.record())).catch(() => this.revision);
      this.onAnswered(sentAt);
      this.options.onLeaseEvent('restored');
      return;
    }
    if (existing.token === this.currentToken && existing.state === 'alive') {
      // Our own earlier write whose answer was lost.
      this.revision = entry.revision;
      return;
    }
    this.held = false;
    this.leaseUntil = 0;
    this.stop();
    if (existing.state === 'taken-over') {
      this.takenOver++;
      this.options.onLeaseEvent('takenOver');
    } else {
      this.options.onLeaseEvent('conflict');
    }
  }

  private onAnswered(sentAt: number): void {
    this.held = true;
    this.lastAnsweredAt = performance.now();
    this.lastBeatSentAt = Math.max(this.lastBeatSentAt, sentAt);
    this.leaseUntil = sentAt + this.options.ttlMs - this.marginMs;
    if (this.keeper) {
      this.keeper.setSlot(LAST_BEAT_SLOT, Math.max(this.keeper.slot(LAST_BEAT_SLOT), sentAt));
      this.keeper.keep(this.currentToken);
    }
    this.armLeaseTimer();
  }

  /** Fires when the lease runs out without a newer answer (also right after a freeze ends). */
  private armLeaseTimer(): void {
    if (this.leaseTimer) clearTimeout(this.leaseTimer);
    const dueAt = this.provenUntil();
    this.leaseTimer = setTimeout(() => this.checkLease(dueAt), Math.max(0, dueAt - performance.now()) + 1);
    this.leaseTimer.unref();
  }

  private checkLease(dueAt: number): void {
    this.leaseTimer = null;
    if (!this.held || this.suspended) return;
    if (this.hasLease()) return this.onKeptByKeeper(performance.now() - dueAt);
    this.suspended = true;
    this.suspensions++;
    this.options.logger.warn(`node ${this.options.nodeId} cannot prove its lease (no heartbeat answered in time); serving nothing read from NATS`);
    this.options.onLeaseEvent('suspended');
  }

  /** This loop's own proof ran out, the keeper's did not (see keptThroughStall). */
  private onKeptByKeeper(lateMs: number): void {
    if (keptThroughStall(lateMs, this.intervalMs, this.options.nodeId, this.options.logger)) this.keptThroughStalls++;
    this.armLeaseTimer();
  }

  // ---------------------------------------------------------------- other nodes

  /** Whether `nodeId` is alive, reusing an answer for a moment. */
  async isAlive(nodeId: string): Promise<boolean> {
    const cached = this.aliveCache.get(nodeId);
    if (cached && performance.now() - cached.at < this.aliveCacheMs) return cached.alive;
    return this.isAliveNow(nodeId);
  }

  /** Reads the node's record now and judges it. */
  async isAliveNow(nodeId: string): Promise<boolean> {
    if (nodeId === this.options.nodeId) return this.held;
    const entry = await this.options.kv().get(token(nodeId));
    return this.judge(nodeId, entry);
  }

  /**
   * For a node not alive: whether it is proven gone, i.e. a survivor took it over (`taken-over`)
   * or it left cleanly (`left`, or no record). A record still saying `alive` merely went silent
   * (a freeze, a cut-off): its process beats again unless a survivor takes the node over first.
   */
  async isProvenGone(nodeId: string): Promise<boolean> {
    const record = parseNodeRecord(await this.options.kv().get(token(nodeId)));
    return record === null || record.state !== 'alive';
  }

  /** Alive: an `alive` record whose revision changed less than its TTL ago (silence counted only while we are steady). */
  judge(nodeId: string, entry: KvEntry | null): boolean {
    const record = parseNodeRecord(entry);
    let alive = false;
    if (!record || !entry || record.state !== 'alive') {
      this.observed.delete(nodeId);
    } else {
      const now = performance.now();
      const seen = this.observed.get(nodeId);
      if (!seen || seen.revision !== entry.revision) {
        this.observed.set(nodeId, { revision: entry.revision, seenAt: now });
        alive = true;
      } else {
        alive = now - Math.max(seen.seenAt, this.steadySince) < record.ttlMs;
      }
    }
    this.aliveCache.set(nodeId, { alive, at: performance.now() });
    if (this.aliveCache.size > 10_000) this.aliveCache.clear();
    return alive;
  }
}
