import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { ClusterLogger } from '../cluster/logger.js';
import { beforeDeadline, sleep } from '../cluster/time-bounds.js';
import { NodeIdConflictError } from '../protocol/errors.js';
import { keptThroughStall, type LeaseKeeperThread } from '../cluster/lease-keeper-thread.js';
import { startLeaseKeeper } from './lease-keeper.js';
import {
  LEASE_HELD_ELSEWHERE,
  LEASE_RESUMED,
  LEASE_TAKEN,
  LEASE_TAKEN_OVER,
  LIVENESS_ACQUIRE,
  LIVENESS_REFRESH,
  LIVENESS_RELEASE,
  MEMBERSHIP_SET,
  MEMBERSHIP_ZADD,
} from './lua-scripts.js';
import type { RedisConnectionPool } from './redis-connection-pool.js';
import type { RedisKeys } from './redis-keys.js';

/**
 * How long the fencing record outlives the liveness key: a process frozen for less than this
 * learns, when it wakes, whether its node was taken over meanwhile.
 */
export const HOLDER_TTL_MS = 24 * 3600_000;

const TAKEOVER_MARKER_PREFIX = 'taken-over-by:';

/** How a survivor's takeover marks the fencing record of the node it took over. */
export function takeoverMarker(survivorId: string, lockToken: string): string {
  return `${TAKEOVER_MARKER_PREFIX}${survivorId}:${lockToken}`;
}

/**
 * For a node whose liveness key is missing: whether it is proven gone, i.e. a survivor took it
 * over (its fencing record is a takeover marker) or it left cleanly (no record). A key that
 * merely lapsed (a freeze, a stall, a failover) leaves the record naming the node's own
 * process, which takes the key back unless a survivor takes the node over first.
 */
export async function isProvenGone(pool: RedisConnectionPool, keys: RedisKeys, nodeId: string): Promise<boolean> {
  const key = keys.holder(nodeId);
  const holder = await pool.pick(key).get(key);
  return holder === null || holder.startsWith(TAKEOVER_MARKER_PREFIX);
}

/** What happened to this process's lease. */
export type LeaseEvent =
  /** The lease can no longer be proven (no refresh answered in time): serve nothing read from Redis. */
  | 'suspended'
  /** The key was still ours, or taken back with nobody having taken the node over: serve again. */
  | 'resumed'
  /** A survivor took the node over while the lease had lapsed: what was read before must never be served. */
  | 'takenOver'
  /** Another process holds the node id now. */
  | 'conflict';

export type ResumeResult = 'resumed' | 'takenOver' | 'conflict';

export interface NodeLivenessOptions {
  keys: RedisKeys;
  pool: RedisConnectionPool;
  nodeId: string;
  /** TTL of the liveness key; refreshed every third of it. */
  ttlMs: number;
  /** TTL the heartbeat gives the node's inbox and replies streams (so an idle node keeps its consumer groups). */
  streamTtlMs: number;
  /** TTL the heartbeat gives the node's owned-identities index. */
  ownedTtlMs: number;
  /** The node's inbox cap (its `streamMaxLen`), written with every heartbeat for writers to apply. */
  inboxCap: number;
  logger: ClusterLogger;
  /** The lease was lost, taken back, taken over or taken by another process (see LeaseEvent). */
  onLeaseEvent: (event: LeaseEvent) => void;
  /** How long "is node X alive" answers are reused (default 250 ms). */
  aliveCacheMs?: number;
  /**
   * How long a worker thread keeps renewing the key while this event loop does not turn (see
   * lease-keeper.ts); 0 (the default here): only the event loop renews it.
   */
  stallToleranceMs?: number;
}

/**
 * The node's liveness key `{n:<id>}:alive`: a per-process random token with a short TTL,
 * refreshed every third of it. A second live process with the same node id is refused
 * (`NodeIdConflictError`); a process restarted after a crash waits at most about one TTL for
 * the dead process's key to lapse, then takes the id (and with it the inbox) over.
 *
 * Fencing: by its own monotonic clock the node knows until when its key is certainly still its
 * own (the send time of the last answered refresh + TTL − a margin); {@link hasLease} is checked
 * before every command read from Redis is written to a socket. When that time passes without a
 * newer answer the lease is `suspended`; the next heartbeat tries to take the key back, which
 * works only if no survivor marked the node taken over meanwhile (the `holder` record).
 * {@link steadyForMs} tells how long Redis has answered this node's heartbeats promptly: a
 * survivor takes a node over only after a whole TTL of that, so a stall of Redis (which lapses
 * every key at once) is never taken for a node's death.
 */
export class NodeLiveness {
  private currentToken = randomUUID();
  private timer: NodeJS.Timeout | null = null;
  private leaseTimer: NodeJS.Timeout | null = null;
  private running = false;
  private held = false;
  /** performance.now() until which the key is certainly ours; 0 when not held. */
  private leaseUntil = 0;
  /** performance.now() since which every heartbeat was answered promptly. */
  private steadySince = Infinity;
  private lastAnsweredAt = 0;
  /** performance.now() when Redis last came back from a stall or loss (not at start). */
  private lastRecoveredAt = -Infinity;
  private suspended = false;
  private beating = false;
  private restartAfterBeat = false;
  private readonly aliveCache = new Map<string, { alive: boolean; at: number }>();
  /** EXISTS queries in flight, one per node: callers arriving meanwhile share it instead of asking again. */
  private readonly aliveQueries = new Map<string, Promise<boolean>>();
  private readonly aliveCacheMs: number;
  private readonly intervalMs: number;
  private readonly marginMs: number;
  private keeper: LeaseKeeperThread | null = null;
  /** Heartbeats that failed (Redis unreachable). */
  failures = 0;
  /** Times the lease was suspended / taken over. */
  suspensions = 0;
  takenOver = 0;
  /** Times this event loop ran more than a beat behind while the lease keeper thread kept the lease. */
  keptThroughStalls = 0;

  constructor(private readonly options: NodeLivenessOptions) {
    this.aliveCacheMs = options.aliveCacheMs ?? 250;
    this.intervalMs = Math.max(50, Math.floor(options.ttlMs / 3));
    // Covers clock-rate differences between this process and Redis.
    this.marginMs = Math.max(20, Math.floor(options.ttlMs / 10));
  }

  get nodeId(): string {
    return this.options.nodeId;
  }

  /** This process's token (a new one per incarnation: after being taken over it rejoins under another). */
  get token(): string {
    return this.currentToken;
  }

  /** True while this process believes it holds the liveness key. */
  get isHeld(): boolean {
    return this.held;
  }

  /** True while the lease is lost and not yet taken back. */
  get isSuspended(): boolean {
    return this.suspended;
  }

  /** Whether this process can prove, now, that the node's key is still its own. No I/O. */
  hasLease(): boolean {
    return this.held && performance.now() < this.provenUntil();
  }

  /** Until when the key is certainly ours: by this loop's own heartbeat, or by the keeper thread's. */
  private provenUntil(): number {
    return this.keeper === null ? this.leaseUntil : Math.max(this.leaseUntil, this.keeper.keptUntil);
  }

  /**
   * Why presence read now may be incomplete or stale, or null when it can be trusted: the lease
   * cannot be proven, a heartbeat answer is overdue (Redis stalls now), or Redis came back from a
   * stall or a loss less than a TTL ago (other nodes may still be re-registering their sockets).
   * A caller that finds no owner then says "unavailable", never "not connected".
   */
  presenceDoubt(): string | null {
    if (!this.hasLease()) return 'this node cannot prove its lease';
    const now = performance.now();
    if (now - this.lastAnsweredAt > this.intervalMs * 1.5) return 'Redis is not answering promptly';
    if (now - this.lastRecoveredAt < this.options.ttlMs) return 'Redis recovered moments ago; presence may be incomplete';
    return null;
  }

  /**
   * Something outside this node's own heartbeat showed that Redis lost or delayed writes (a
   * failover of a Redis Cluster master, a slow answer about another node): presence is in doubt
   * for a TTL.
   */
  noteDisturbance(): void {
    this.lastRecoveredAt = performance.now();
  }

  /**
   * Whether this node may judge others dead: it holds its lease and Redis has answered it
   * promptly for a whole TTL, so a lapsed key elsewhere is not a stall of Redis.
   */
  isSteady(): boolean {
    return this.steadyForMs() >= this.options.ttlMs && this.presenceDoubt() === null;
  }

  /** How long the lease has been held with every heartbeat answered promptly (0 when not held). */
  steadyForMs(): number {
    if (!this.hasLease()) return 0;
    const now = performance.now();
    // An answer overdue right now is a stall in progress, whatever the lease still says.
    if (now - this.lastAnsweredAt > this.intervalMs * 1.5) return 0;
    return Math.max(0, now - this.steadySince);
  }

  private get aliveKey(): string {
    return this.options.keys.alive(this.options.nodeId);
  }

  private get holderKey(): string {
    return this.options.keys.holder(this.options.nodeId);
  }

  private get client() {
    return this.options.pool.pick(this.aliveKey);
  }

  private runAcquire(mode: 'fresh' | 'resume'): Promise<[number, number]> {
    const { ttlMs } = this.options;
    return LIVENESS_ACQUIRE.run(this.client, [this.aliveKey, this.holderKey], [this.currentToken, ttlMs, HOLDER_TTL_MS, mode]) as Promise<
      [number, number]
    >;
  }

  /**
   * Takes the node id. When another token holds it, watches the key: if its TTL goes up, a
   * live process refreshes it (conflict); if it lapses within about one TTL, a crashed process
   * left it and we take it.
   */
  async acquire(): Promise<void> {
    const { ttlMs } = this.options;
    const pollMs = Math.max(20, Math.min(250, Math.floor(ttlMs / 10)));
    const started = Date.now();
    let waitBound: number | null = null;
    let lastPttl: number | null = null;
    for (;;) {
      const sentAt = performance.now();
      const [status, pttl] = await this.runAcquire('fresh');
      if (status !== LEASE_HELD_ELSEWHERE) {
        this.granted(sentAt, true);
        await this.writeInboxCap();
        await this.register();
        return;
      }
      if (lastPttl !== null && pttl > lastPttl) throw new NodeIdConflictError(this.options.nodeId);
      // A key without TTL, or one longer than a few of ours, is not a crashed node of this config.
      waitBound ??= Math.min(Math.max(ttlMs, pttl), ttlMs * 3) + pollMs * 2;
      if (pttl < 0 || Date.now() - started > waitBound) throw new NodeIdConflictError(this.options.nodeId);
      if (lastPttl === null) {
        this.options.logger.log(
          `node id ${this.options.nodeId} is still held (${pttl} ms left): waiting for it to lapse (a crashed process) or be refreshed (a live one)`,
        );
      }
      lastPttl = pttl;
      await sleep(Math.min(pollMs, Math.max(pttl, 5)));
    }
  }

  /**
   * Takes the key back after it lapsed (or confirms we hold it), without waiting: `resumed`
   * when nobody took the node over meanwhile, `takenOver` when a survivor did (nothing read
   * before may be served; rejoin with {@link renew}), `conflict` when another process holds it.
   */
  async reacquire(): Promise<ResumeResult> {
    const sentAt = performance.now();
    const [status] = await this.runAcquire('resume');
    if (status === LEASE_TAKEN || status === LEASE_RESUMED) {
      this.granted(sentAt, false);
      await this.writeInboxCap();
      await this.register();
      if (this.suspended) this.emit('resumed');
      return 'resumed';
    }
    this.lose();
    if (status === LEASE_TAKEN_OVER) {
      this.takenOver++;
      this.emit('takenOver');
      return 'takenOver';
    }
    this.emit('conflict');
    return 'conflict';
  }

  /** Rejoins under a fresh token (a new incarnation) after being taken over. False when another process holds the id. */
  async renew(): Promise<boolean> {
    this.currentToken = randomUUID();
    const sentAt = performance.now();
    const [status] = await this.runAcquire('fresh');
    if (status === LEASE_HELD_ELSEWHERE) return false;
    this.granted(sentAt, true);
    this.lastRecoveredAt = performance.now();
    this.suspended = false;
    await this.writeInboxCap();
    await this.register();
    return true;
  }

  /** Starts the heartbeat (every ttl/3), or restarts it after a takeover or a conflict ended it. */
  start(): void {
    this.running = true;
    this.keeper ??= this.startKeeper();
    if (this.held) this.keeper?.keep(this.currentToken);
    // A beat in flight may be the one that ended the heartbeat: it schedules the next one then.
    if (this.beating) this.restartAfterBeat = true;
    else this.schedule(this.intervalMs);
  }

  stop(): void {
    this.running = false;
    this.keeper?.keep(null);
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.clearLeaseTimer();
  }

  /** One heartbeat: 1 refreshed, 0 lapsed, -1 another process holds the key. */
  async refresh(): Promise<number> {
    const sentAt = performance.now();
    const result = Number(await LIVENESS_REFRESH.run(this.client, this.refreshKeys(), [this.currentToken, ...this.refreshArgs()]));
    if (result === 1) {
      this.granted(sentAt, false);
      // Re-registering on every beat heals a registry entry a takeover removed in a race.
      await this.register();
      // The key was ours all along (a slow answer, not a takeover): nothing was served meanwhile.
      if (this.suspended && this.hasLease()) this.emit('resumed');
    } else {
      this.lose();
    }
    return result;
  }

  /** KEYS of LIVENESS_REFRESH. */
  private refreshKeys(): string[] {
    const { keys, nodeId } = this.options;
    return [...keys.nodeKeys(nodeId), this.holderKey, keys.inboxPacked(nodeId)];
  }

  /** ARGV of LIVENESS_REFRESH after the token. */
  private refreshArgs(): number[] {
    const { ttlMs, streamTtlMs, ownedTtlMs, inboxCap } = this.options;
    return [ttlMs, streamTtlMs, ownedTtlMs, inboxCap, HOLDER_TTL_MS];
  }

  private startKeeper(): LeaseKeeperThread | null {
    const toleranceMs = this.options.stallToleranceMs ?? 0;
    if (toleranceMs <= 0) return null;
    return startLeaseKeeper({
      ...{ client: this.client, script: LIVENESS_REFRESH.lua, keys: this.refreshKeys(), args: this.refreshArgs() },
      ...{ intervalMs: this.intervalMs, ttlMs: this.options.ttlMs, marginMs: this.marginMs, toleranceMs, logger: this.options.logger },
    });
  }

  /** Deletes the liveness key if we still hold it (clean stop). */
  async release(): Promise<boolean> {
    this.stop();
    this.closeKeeper();
    this.held = false;
    this.leaseUntil = 0;
    return (await LIVENESS_RELEASE.run(this.client, [this.aliveKey, this.holderKey], [this.currentToken])) === 1;
  }

  /** Forgets the key without touching Redis (crash simulation / abort): it lapses on its own. */
  abandon(): void {
    this.stop();
    this.closeKeeper();
    this.held = false;
    this.leaseUntil = 0;
  }

  /** A refresh or acquire sent at `sentAt` was answered: the key is ours until sentAt + TTL (minus the margin). */
  private granted(sentAt: number, fresh: boolean): void {
    const now = performance.now();
    const interval = this.intervalMs;
    // A slow answer or a long gap between answers means Redis (or this process) stalled: start
    // counting steadiness again, so a survivor waits a whole TTL before judging anyone dead.
    const disturbed = fresh || !this.hasLease() || now - sentAt > interval / 2 || now - this.lastAnsweredAt > interval * 2 + interval / 2;
    this.leaseUntil = Math.max(this.held ? this.leaseUntil : 0, sentAt + this.options.ttlMs - this.marginMs);
    this.held = true;
    this.keeper?.keep(this.currentToken);
    this.lastAnsweredAt = now;
    if (disturbed) this.steadySince = now;
    if (disturbed && !fresh) this.lastRecoveredAt = now;
    this.armLeaseTimer();
  }

  private lose(): void {
    this.held = false;
    this.leaseUntil = 0;
    this.steadySince = Infinity;
    this.clearLeaseTimer();
  }

  private emit(event: LeaseEvent): void {
    if (event === 'suspended') {
      if (this.suspended) return;
      this.suspensions++;
    }
    // Suspended until taken back; after a takeover or a conflict, until renew() (or for good).
    this.suspended = event !== 'resumed';
    this.options.onLeaseEvent(event);
  }

  /** Fires when the lease runs out without a newer answer (also right after a freeze ends). */
  private armLeaseTimer(): void {
    this.clearLeaseTimer();
    const dueAt = this.provenUntil();
    this.leaseTimer = setTimeout(() => {
      this.leaseTimer = null;
      if (!this.running) return;
      if (!this.hasLease()) this.onLapsed();
      else this.onKeptByKeeper(performance.now() - dueAt);
    }, Math.max(0, dueAt - performance.now()) + 1);
    this.leaseTimer.unref();
  }

  /** This loop's own proof ran out, the keeper's did not (see keptThroughStall). */
  private onKeptByKeeper(lateMs: number): void {
    if (keptThroughStall(lateMs, this.intervalMs, this.options.nodeId, this.options.logger)) this.keptThroughStalls++;
    this.armLeaseTimer();
  }

  private closeKeeper(): void {
    this.keeper?.close();
    this.keeper = null;
  }

  private clearLeaseTimer(): void {
    if (this.leaseTimer) clearTimeout(this.leaseTimer);
    this.leaseTimer = null;
  }

  private onLapsed(): void {
    this.options.logger.warn(
      `node ${this.options.nodeId} cannot prove its lease any more: serving nothing read from Redis until it is taken back`,
    );
    this.lose();
    this.emit('suspended');
    // Try to take it back at once instead of waiting for the next beat (one beat at a time).
    if (this.beating) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.schedule(0);
  }

  /**
   * Whether `nodeId` holds its liveness key now (answers reused for a few hundred ms). When the
   * answer is stale, concurrent callers (a burst of commands for one node) share one EXISTS; if
   * it fails they all get its error and nothing is cached, so the next caller asks again.
   */
  /**
   * True when a fresh answer of {@link isAlive} says `nodeId` is alive (no I/O); false: ask.
   * Past half its life the answer is asked for again in the background, so that a steady stream
   * of calls to that node keeps finding a fresh one instead of waiting for it.
   */
  isKnownAlive(nodeId: string): boolean {
    if (nodeId === this.options.nodeId && this.held) return true;
    const cached = this.aliveCache.get(nodeId);
    if (cached === undefined || !cached.alive) return false;
    const age = Date.now() - cached.at;
    if (age >= this.aliveCacheMs) return false;
    if (age >= this.aliveCacheMs / 2) this.askAlive(nodeId).catch(() => undefined);
    return true;
  }

  async isAlive(nodeId: string): Promise<boolean> {
    if (nodeId === this.options.nodeId && this.held) return true;
    const cached = this.aliveCache.get(nodeId);
    if (cached && Date.now() - cached.at < this.aliveCacheMs) return cached.alive;
    return this.askAlive(nodeId);
  }

  /** One query per node at a time. */
  private askAlive(nodeId: string): Promise<boolean> {
    const inFlight = this.aliveQueries.get(nodeId);
    if (inFlight) return inFlight;
    const query = this.queryAlive(nodeId).finally(() => this.aliveQueries.delete(nodeId));
    this.aliveQueries.set(nodeId, query);
    return query;
  }

  private async queryAlive(nodeId: string): Promise<boolean> {
    const askedAt = Date.now();
    const key = this.options.keys.alive(nodeId);
    const alive = (await this.options.pool.pick(key).exists(key)) === 1;
    // A slow "dead" answer comes from a shard that stalled (on Redis Cluster, not necessarily
    // ours): every key there may have lapsed at once, which is no node's death.
    if (!alive && Date.now() - askedAt > this.intervalMs / 2) this.noteDisturbance();
    // An isAliveNow answered meanwhile was asked later: keep it.
    if ((this.aliveCache.get(nodeId)?.at ?? -Infinity) <= askedAt) this.aliveCache.set(nodeId, { alive, at: askedAt });
    if (this.aliveCache.size > 10_000) this.aliveCache.clear();
    return alive;
  }

  /** Whether `nodeId` holds its liveness key, asked from Redis now (no cache). */
  isAliveNow(nodeId: string): Promise<boolean> {
    return this.queryAlive(nodeId);
  }

  /** Before the first command can arrive: writers apply the owner's cap, not their own. */
  private async writeInboxCap(): Promise<void> {
    const { keys, nodeId, inboxCap, streamTtlMs } = this.options;
    await MEMBERSHIP_SET.run(this.client, [keys.inboxCap(nodeId)], [inboxCap, streamTtlMs]);
  }

  private async register(): Promise<void> {
    const { keys, nodeId } = this.options;
    await MEMBERSHIP_ZADD.run(this.options.pool.pick(keys.registry), [keys.registry], [Date.now(), nodeId]);
  }

  private schedule(delayMs: number): void {
    if (!this.running || this.timer !== null) return;
    this.timer = setTimeout(() => void this.beat(), delayMs);
    this.timer.unref();
  }

  /** The step's result, or a failure after a TTL (a later rejection of the step is not left unhandled). */
  private withinTtl<T>(step: Promise<T>): Promise<T> {
    return beforeDeadline(step, Date.now() + this.options.ttlMs, () => new Error(`no answer within ${this.options.ttlMs} ms`));
  }

  private async beat(): Promise<void> {
    this.timer = null;
    this.beating = true;
    let keepBeating = true;
    try {
      // A command on a connection that broke may never settle: a beat gives up after a TTL, so
      // the heartbeat never stops (a late answer still counts: the lease runs from its send time).
      if (this.suspended) {
        const result = await this.withinTtl(this.reacquire());
        // Taken over or conflict: whoever owns this liveness decides what comes next.
        keepBeating = result === 'resumed';
      } else {
        const result = await this.withinTtl(this.refresh());
        if (result === 0 && this.running) this.emit('suspended');
        else if (result === -1 && this.running) {
          this.emit('conflict');
          keepBeating = false;
        }
      }
    } catch (error) {
      this.failures++;
      this.options.logger.debug?.(`liveness heartbeat failed: ${(error as Error).message}`);
    } finally {
      this.beating = false;
      // While suspended, try to take the key back soon rather than a third of a TTL later.
      if (keepBeating || this.restartAfterBeat) this.schedule(this.suspended ? Math.min(this.intervalMs, 100) : this.intervalMs);
      this.restartAfterBeat = false;
    }
  }
}
