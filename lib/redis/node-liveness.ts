import { sleep } from '../cluster/time-bounds.js';
import { randomUUID } from 'node:crypto';
import type { ClusterLogger } from '../cluster/logger.js';
import { NodeIdConflictError } from '../protocol/errors.js';
import { LIVENESS_REFRESH, TOKEN_ACQUIRE, TOKEN_RELEASE } from './lua-scripts.js';
import type { RedisConnectionPool } from './redis-connection-pool.js';
import type { RedisKeys } from './redis-keys.js';

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
  /** The key lapsed (Redis lost it, or we stalled past the TTL) or another process holds it now. */
  onLost: (reason: 'lapsed' | 'conflict') => void;
  /** How long "is node X alive" answers are reused (default 250 ms). */
  aliveCacheMs?: number;
}

/**
 * The node's liveness key `{n:<id>}:alive`: a per-process random token with a short TTL,
 * refreshed every third of it. A second live process with the same node id is refused
 * (`NodeIdConflictError`); a process restarted after a crash waits at most about one TTL for
 * the dead process's key to lapse, then takes the id (and with it the inbox) over.
 */
export class NodeLiveness {
  readonly token = randomUUID();
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private held = false;
  private readonly aliveCache = new Map<string, { alive: boolean; at: number }>();
  /** EXISTS queries in flight, one per node: callers arriving meanwhile share it instead of asking again. */
  private readonly aliveQueries = new Map<string, Promise<boolean>>();
  private readonly aliveCacheMs: number;
  /** Heartbeats that failed (Redis unreachable). */
  failures = 0;

  constructor(private readonly options: NodeLivenessOptions) {
    this.aliveCacheMs = options.aliveCacheMs ?? 250;
  }

  get nodeId(): string {
    return this.options.nodeId;
  }

  /** True while this process believes it holds the liveness key. */
  get isHeld(): boolean {
    return this.held;
  }

  private get aliveKey(): string {
    return this.options.keys.alive(this.options.nodeId);
  }

  private get client() {
    return this.options.pool.pick(this.aliveKey);
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
      const [ok, pttl] = (await TOKEN_ACQUIRE.run(this.client, [this.aliveKey], [this.token, ttlMs])) as [number, number];
      if (ok === 1) {
        this.held = true;
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

  /** Takes the key again after it lapsed (no waiting). False when another process holds it. */
  async reacquire(): Promise<boolean> {
    const [ok] = (await TOKEN_ACQUIRE.run(this.client, [this.aliveKey], [this.token, this.options.ttlMs])) as [number, number];
    this.held = ok === 1;
    if (this.held) {
      await this.writeInboxCap();
      await this.register();
    }
    return this.held;
  }

  /** Starts the heartbeat (every ttl/3). */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule();
  }

  stop(): void {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** One heartbeat: 1 refreshed, 0 lapsed, -1 another process holds the key. */
  async refresh(): Promise<number> {
    const { keys, nodeId, ttlMs, streamTtlMs, ownedTtlMs, inboxCap } = this.options;
    const result = Number(
      await LIVENESS_REFRESH.run(this.client, keys.nodeKeys(nodeId), [this.token, ttlMs, streamTtlMs, ownedTtlMs, inboxCap]),
    );
    if (result === 1) {
      // Re-registering on every beat heals a registry entry a takeover removed in a race.
      await this.register();
    } else {
      this.held = false;
    }
    return result;
  }

  /** Deletes the liveness key if we still hold it (clean stop). */
  async release(): Promise<boolean> {
    this.stop();
    this.held = false;
    return (await TOKEN_RELEASE.run(this.client, [this.aliveKey], [this.token])) === 1;
  }

  /** Forgets the key without touching Redis (crash simulation / abort): it lapses on its own. */
  abandon(): void {
    this.stop();
    this.held = false;
  }

  /**
   * Whether `nodeId` holds its liveness key now (answers reused for a few hundred ms). When the
   * answer is stale, concurrent callers (a burst of commands for one node) share one EXISTS; if
   * it fails they all get its error and nothing is cached, so the next caller asks again.
   */
  async isAlive(nodeId: string): Promise<boolean> {
    if (nodeId === this.options.nodeId && this.held) return true;
    const cached = this.aliveCache.get(nodeId);
    if (cached && Date.now() - cached.at < this.aliveCacheMs) return cached.alive;
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
    await this.client.set(keys.inboxCap(nodeId), inboxCap, 'PX', streamTtlMs);
  }

  private async register(): Promise<void> {
    const { keys, nodeId } = this.options;
    await this.options.pool.pick(keys.registry).zadd(keys.registry, Date.now(), nodeId);
  }

  private schedule(): void {
    if (!this.running) return;
    this.timer = setTimeout(() => void this.beat(), Math.max(50, Math.floor(this.options.ttlMs / 3)));
    this.timer.unref();
  }

  private async beat(): Promise<void> {
    try {
      const result = await this.refresh();
      if (result === 0 && this.running) this.options.onLost('lapsed');
      else if (result === -1 && this.running) this.options.onLost('conflict');
    } catch (error) {
      this.failures++;
      this.options.logger.debug?.(`liveness heartbeat failed: ${(error as Error).message}`);
    } finally {
      this.schedule();
    }
  }
}

