import { randomUUID } from 'node:crypto';
import type { ClusterMessage, CommandOutcome } from '../cluster/envelope.js';
import { forwarded, forwardingTarget, mayForward } from '../cluster/forwarding.js';
import type { ClusterLogger } from '../cluster/logger.js';
import { outcomeFromError } from '../cluster/outcome.js';
import { InboxFullError } from '../protocol/errors.js';
import { NODE_CLEANUP, TAKEOVER_FENCE, TOKEN_ACQUIRE, TOKEN_REFRESH, TOKEN_RELEASE } from './lua-scripts.js';
import { HOLDER_TTL_MS, takeoverMarker, type NodeLiveness } from './node-liveness.js';
import type { PresenceStore } from './presence-store.js';
import type { RedisConnectionPool } from './redis-connection-pool.js';
import { INBOX_GROUP, type RedisKeys } from './redis-keys.js';
import { decodeEntryFields, entriesOf, type StreamEntry } from './stream-publisher.js';

/** Stale presence entries removed between two checks that the dead node is still dead. */
const STALE_REMOVALS_PER_CHECK = 100;

export interface NodeTakeoverOptions {
  keys: RedisKeys;
  pool: RedisConnectionPool;
  selfId: string;
  liveness: NodeLiveness;
  presence: PresenceStore;
  /** Appends a message to a node's inbox (the adapter's unicast path). */
  send: (nodeId: string, message: ClusterMessage) => Promise<void>;
  logger: ClusterLogger;
  /** How often the node registry is checked for lapsed nodes (default 1000 ms). */
  intervalMs?: number;
  /** TTL of the takeover lock, renewed while draining (default 10000 ms). */
  lockTtlMs?: number;
  /** Entries read per batch (default 100). */
  batchSize?: number;
}

export interface TakeoverReport {
  nodeId: string;
  /** Commands sent on to the node that owns their charge point now. */
  forwarded: number;
  /** Commands answered to their caller as not connected. */
  answered: number;
  /** Entries nobody waits for (replies and evictions for the dead node, expired commands). */
  dropped: number;
  /** Presence entries that still pointed at the dead node. */
  presenceRemoved: number;
  /** False when the node came back (or the lock was lost) before the takeover finished. */
  completed: boolean;
}

/**
 * Node loss. Every survivor checks the node registry about once a second; when a node's
 * liveness key has lapsed, ONE survivor (lock `{n:<dead>}:takeover`, SET NX PX) drains the
 * dead node's inbox through its consumer group, reading as the dead node's own consumer so
 * that a restart with the same node id finds whatever is left exactly where it left it:
 *
 * 1. entries the dead node had read but not acknowledged (they may have reached the charge
 *    point already, so they are answered, never re-sent), then entries it never read;
 * 2. a command whose deadline is still ahead is forwarded to the live node that owns its
 *    charge point now (never-read ones only, by cluster/forwarding.ts), otherwise answered to its
 *    origin as `notConnected` ("node <id> died"); expired commands and messages addressed to
 *    the dead node (replies, evictions) are dropped;
 * 3. presence entries still pointing at the dead node are deleted (only where node and epoch
 *    still match);
 * 4. its keys are deleted (only while it is still dead and nothing is left unread in its
 *    inbox; its replies stream goes unread, the calls they answer died with it) and it leaves
 *    the registry.
 *
 * Before every batch the takeover checks that the node is still dead and the lock still ours,
 * and stops otherwise.
 *
 * Fencing: a survivor takes over only while its own lease is held and Redis has answered it
 * promptly for a whole TTL (a stall of Redis lapses every key at once and is no node's death),
 * and before answering anything it marks the node taken over (only while the node's key is
 * absent), so the dead node's process, should it wake up, learns that before it serves again.
 */
export class NodeTakeover {
  private readonly intervalMs: number;
  private readonly lockTtlMs: number;
  private readonly batchSize: number;
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private scanning: Promise<TakeoverReport[]> | null = null;
  private rescan = false;

  /** Takeovers this node completed. */
  takeovers = 0;
  forwarded = 0;
  answered = 0;
  dropped = 0;
  failures = 0;

  constructor(private readonly options: NodeTakeoverOptions) {
    this.intervalMs = options.intervalMs ?? 1000;
    this.lockTtlMs = options.lockTtlMs ?? 10_000;
    this.batchSize = options.batchSize ?? 100;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule(this.intervalMs);
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.scanning?.catch(() => undefined);
  }

  /** Checks the registry soon (e.g. a node announced it left). */
  poke(): void {
    if (!this.running) return;
    if (this.scanning) {
      this.rescan = true;
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.schedule(0);
  }

  /** One pass: takes over every registered node whose liveness key has lapsed. */
  scan(): Promise<TakeoverReport[]> {
    this.scanning ??= this.scanOnce().finally(() => {
      this.scanning = null;
    });
    return this.scanning;
  }

  private async scanOnce(): Promise<TakeoverReport[]> {
    const { keys, pool, selfId, liveness } = this.options;
    if (!liveness.isSteady()) return [];
    const members = await pool.pick(keys.registry).zrange(keys.registry, '0', '-1');
    const reports: TakeoverReport[] = [];
    for (const nodeId of members) {
      if (nodeId === selfId) continue;
      if (await liveness.isAliveNow(nodeId)) continue;
      const report = await this.takeOver(nodeId);
      if (report) reports.push(report);
    }
    return reports;
  }

  /** Drains and removes one dead node; null when another survivor holds the lock or it is alive. */
  async takeOver(nodeId: string): Promise<TakeoverReport | null> {
    const { keys, pool, logger, liveness } = this.options;
    const lockKey = keys.takeoverLock(nodeId);
    const lockToken = randomUUID();
    const lockClient = pool.pick(lockKey);
    const [locked] = (await TOKEN_ACQUIRE.run(lockClient, [lockKey], [lockToken, this.lockTtlMs])) as [number, number];
    if (locked !== 1) return null;
    const report: TakeoverReport = { nodeId, forwarded: 0, answered: 0, dropped: 0, presenceRemoved: 0, completed: false };
    try {
      // Released by a survivor that just finished: the node left the registry before its lock.
      if ((await pool.pick(keys.registry).zscore(keys.registry, nodeId)) === null) return null;
      const stillOurs = async (): Promise<boolean> =>
        liveness.isSteady() &&
        !(await liveness.isAliveNow(nodeId)) &&
        (await TOKEN_REFRESH.run(lockClient, [lockKey], [lockToken, this.lockTtlMs])) === 1;
      if (!(await stillOurs())) return null;
      const marker = takeoverMarker(this.options.selfId, lockToken);
      const fenced = await TAKEOVER_FENCE.run(pool.pick(keys.alive(nodeId)), [keys.alive(nodeId), keys.holder(nodeId)], [marker, HOLDER_TTL_MS]);
      if (Number(fenced) !== 1) return null;
      logger.warn(`node ${nodeId} is gone (liveness lapsed); taking over its inbox`);
      for (let attempt = 0; attempt < 5; attempt++) {
        if (!(await this.drain(nodeId, report, stillOurs))) return report;
        report.presenceRemoved += await this.removeStalePresence(nodeId);
        const cleaned = Number(
          await NODE_CLEANUP.run(
            pool.pick(keys.stream(nodeId)),
            keys.nodeKeys(nodeId),
            [INBOX_GROUP],
          ),
        );
        if (cleaned === 0) return report; // it came back
        if (cleaned === 1) {
          await pool.pick(keys.registry).zrem(keys.registry, nodeId);
          report.completed = true;
          this.takeovers++;
          logger.log(
            `took over node ${nodeId}: ${report.forwarded} forwarded, ${report.answered} answered, ` +
              `${report.dropped} dropped, ${report.presenceRemoved} presence entries removed`,
          );
          return report;
        }
        // Entries arrived while we drained: drain again.
      }
      return report;
    } catch (error) {
      this.failures++;
      logger.warn(`takeover of node ${nodeId} failed: ${(error as Error).message}`);
      return report;
    } finally {
      await TOKEN_RELEASE.run(lockClient, [lockKey], [lockToken]).catch(() => undefined);
    }
  }

  /** Handles every entry of the dead node's inbox. False when it stopped because the node came back. */
  private async drain(nodeId: string, report: TakeoverReport, stillOurs: () => Promise<boolean>): Promise<boolean> {
    const { keys, pool } = this.options;
    const streamKey = keys.stream(nodeId);
    const client = pool.pick(streamKey);
    try {
      await client.xgroup('CREATE', streamKey, INBOX_GROUP, '0');
    } catch (error) {
      const message = (error as Error).message;
      if (message.includes('requires the key to exist')) return true; // no inbox at all
      if (!message.startsWith('BUSYGROUP')) throw error;
    }
    // Read as the dead node's own consumer: what we leave unacknowledged stays where a restart looks.
    let cursor: string | null = '0';
    for (;;) {
      if (!(await stillOurs())) return false;
      const reader = client as unknown as { xreadgroup(...args: Array<string | number>): Promise<unknown> };
      const entries: StreamEntry[] = entriesOf(
        await reader.xreadgroup('GROUP', INBOX_GROUP, nodeId, 'COUNT', this.batchSize, 'STREAMS', streamKey, cursor ?? '>'),
      );
      if (entries.length === 0) {
        if (cursor === null) return true;
        cursor = null;
        continue;
      }
      for (const entry of entries) {
        await this.handle(nodeId, entry, cursor !== null, report);
        // One at a time: a failure midway must not make the next pass answer what was forwarded.
        await client.xack(streamKey, INBOX_GROUP, entry.id);
      }
      if (cursor !== null) cursor = entries[entries.length - 1].id;
    }
  }

  private async handle(nodeId: string, entry: StreamEntry, wasDelivered: boolean, report: TakeoverReport): Promise<void> {
    const message = entry.fields ? decodeEntryFields(entry.fields) : null;
    if (!message || message.kind !== 'command') {
      // Replies and evictions were for the dead node only; nothing else travels by stream.
      this.count(report, 'dropped');
      return;
    }
    const { liveness, presence, send, selfId } = this.options;
    if (message.origin === nodeId || !(await liveness.isAlive(message.origin))) {
      this.count(report, 'dropped');
      return;
    }
    const answer = (outcome: CommandOutcome) =>
      send(message.origin, { kind: 'reply', id: message.id, from: selfId, identity: message.identity, outcome });
    const now = Date.now();
    if (now >= message.deadline) {
      // Tell the caller precisely, instead of letting it guess after its grace period.
      await answer({ status: 'timeout', sent: wasDelivered });
      this.count(report, 'answered');
      return;
    }
    // The node layer's forwarding policy; what the dead node had read may have been sent already.
    if (!wasDelivered && mayForward(message)) {
      const target = forwardingTarget(message, await presence.get(message.identity), nodeId, now);
      if (target !== null && (await liveness.isAlive(target))) {
        try {
          await send(target, forwarded(message));
          this.count(report, 'forwarded');
        } catch (error) {
          // The new owner's inbox is full: the caller hears so (never sent) instead of waiting out its timeout.
          if (!(error instanceof InboxFullError)) throw error;
          await answer(outcomeFromError(error));
          this.count(report, 'answered');
        }
        return;
      }
    }
    // A command the dead node had read may have reached the charge point: say so, typed, so a
    // caller never takes it for "nothing happened" and runs a Reset twice.
    await answer(
      wasDelivered
        ? { status: 'notConnected', reason: `node ${nodeId} died while handling the command`, maybeDelivered: true }
        : { status: 'notConnected', reason: `node ${nodeId} died` },
    );
    this.count(report, 'answered');
  }

  private count(report: TakeoverReport, field: 'forwarded' | 'answered' | 'dropped'): void {
    report[field]++;
    this[field]++;
  }

  /** Deletes presence entries that still name the dead node (node and epoch compared in Lua). */
  private async removeStalePresence(nodeId: string): Promise<number> {
    const { presence, liveness } = this.options;
    const stale = await presence.listOwned(nodeId);
    let removed = 0;
    for (let i = 0; i < stale.length; i += STALE_REMOVALS_PER_CHECK) {
      // A node that was only stalled re-registers its sockets when it comes back: leave them.
      if (await liveness.isAliveNow(nodeId)) break;
      removed += await presence.removeMany(stale.slice(i, i + STALE_REMOVALS_PER_CHECK), nodeId);
    }
    return removed;
  }

  private schedule(delayMs: number): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.scan()
        .catch((error: unknown) => {
          this.failures++;
          this.options.logger.debug?.(`node registry check failed: ${(error as Error).message}`);
        })
        .finally(() => {
          const again = this.rescan;
          this.rescan = false;
          this.schedule(again ? 0 : this.intervalMs);
        });
    }, delayMs);
    this.timer.unref();
  }
}
