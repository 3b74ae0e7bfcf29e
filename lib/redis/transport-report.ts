import type { AdapterMetrics, TransportProbe } from '../cluster/event-adapter.interface.js';
import type { Broadcaster } from './broadcaster.js';
import { pingWithin, writeWithin } from './connection-probe.js';
import type { NodeLiveness } from './node-liveness.js';
import type { RedisConnectionPool } from './redis-connection-pool.js';
import type { RedisDriver } from './redis-driver.js';
import type { RedisKeys } from './redis-keys.js';
import type { StreamConsumer } from './stream-consumer.js';

/** The transport's counters, plus the seed's `redisConsumerLag` (see {@link RedisTransportReport.metrics}). */
export type RedisAdapterMetrics = AdapterMetrics & { readonly redisConsumerLag: { pendingMessages: number; lag: number } };

/** The adapter as this report sees it, read at each call. */
export interface ReportedState {
  state: string;
  nodeId: string | null;
  liveness: NodeLiveness | null;
  consumer: StreamConsumer | null;
  /** Counters of the adapter's parts, reported as they are. */
  counters: () => Record<string, number>;
}

export interface TransportReportDeps {
  keys: RedisKeys;
  driver: RedisDriver;
  pool: RedisConnectionPool;
  broadcaster: Broadcaster;
  view: () => ReportedState;
}

/** Health, readiness probe and metrics of the Redis transport. */
export class RedisTransportReport {
  private lastMetrics = { pending: 0, lag: 0, length: 0 };

  constructor(private readonly deps: TransportReportDeps) {}

  healthIssue(): string | null {
    const { state, liveness, consumer } = this.deps.view();
    if (state !== 'connected') return `adapter is ${state}`;
    if (!liveness?.isHeld) return 'liveness key not held';
    if (consumer && !consumer.isRunning) return 'inbox consumer not running';
    return this.deps.driver.healthIssue() ?? this.deps.pool.healthIssue();
  }

  /**
   * Readiness: every writer completes a real write (a short-lived key in this node's slot: a
   * Redis that answers PING but refuses writes, e.g. at maxmemory with noeviction, reports
   * down) and the subscriber answers PING within `timeoutMs`; the blocking reader (which sits
   * in XREADGROUP BLOCK, so a PING would queue behind it) counts as up while ready and its
   * reads keep returning; the liveness key is still ours; the consumer runs.
   */
  async probe(timeoutMs: number): Promise<TransportProbe> {
    const { keys, pool, driver, broadcaster } = this.deps;
    const { state, nodeId, liveness, consumer } = this.deps.view();
    const connections: TransportProbe['connections'] = {};
    const probeKey = nodeId === null ? null : keys.probe(nodeId);
    const pings: Promise<void>[] = pool.drivers.map(async (member, index) => {
      connections[index === 0 ? 'writer' : `writer-${index}`] =
        probeKey === null ? await pingWithin(member.writer, timeoutMs) : await writeWithin(member.writer, probeKey, timeoutMs);
    });
    if (broadcaster.activeSubscriptions > 0) {
      pings.push(
        pingWithin(driver.subscriber, timeoutMs).then((result) => {
          connections.subscriber = result;
        }),
      );
    }
    await Promise.all(pings);
    if (consumer) {
      const blocking = driver.blocking;
      const sinceRead = Date.now() - consumer.lastReadAt;
      connections.blocking =
        blocking.status !== 'ready'
          ? { ok: false, rttMs: null, error: `connection ${blocking.status}` }
          : sinceRead > consumer.blockTimeMs + timeoutMs
            ? { ok: false, rttMs: null, error: `no read returned for ${sinceRead} ms` }
            : { ok: true, rttMs: null };
    }
    // Lag and pending need Redis; with a writer down, report the last values read instead of waiting.
    const writerUp = Object.values(connections).every((connection) => connection.ok);
    const metrics = writerUp ? await this.metrics() : { consumerLag: this.lastMetrics.lag, pendingMessages: this.lastMetrics.pending };
    return {
      connections,
      livenessHeld: state === 'connected' && (liveness?.isHeld ?? false),
      consumerRunning: consumer?.isRunning ?? false,
      consumerLag: metrics.consumerLag,
      pendingMessages: metrics.pendingMessages,
    };
  }

  /**
   * Every enumerable value is a number (Prometheus, JSON). The seed's shape,
   * `(await adapter.metrics()).redisConsumerLag.pendingMessages`, is there too, not enumerable.
   */
  async metrics(): Promise<RedisAdapterMetrics> {
    const metrics = await this.readMetrics();
    const redisConsumerLag = { pendingMessages: metrics.pendingMessages, lag: metrics.consumerLag };
    return Object.defineProperty(metrics, 'redisConsumerLag', { value: redisConsumerLag, enumerable: false }) as RedisAdapterMetrics;
  }

  private async readMetrics(): Promise<AdapterMetrics> {
    const { pool, broadcaster } = this.deps;
    const { consumer, liveness, counters: countersNow } = this.deps.view();
    const counters = countersNow();
    if (consumer) {
      try {
        this.lastMetrics = await consumer.metrics();
      } catch {
        // Redis unreachable: report the last values read.
      }
    }
    return {
      pendingMessages: this.lastMetrics.pending,
      consumerLag: this.lastMetrics.lag,
      activeSubscriptions: broadcaster.activeSubscriptions + (consumer?.isRunning ? 1 : 0),
      streamLength: this.lastMetrics.length,
      sent: counters.sent,
      sendFailures: counters.sendFailures,
      commandsRefused: counters.commandsRefused,
      received: consumer?.received ?? 0,
      acked: consumer?.acked ?? 0,
      inFlightHandlers: consumer?.inFlightCount ?? 0,
      malformedMessages: (consumer?.malformed ?? 0) + broadcaster.malformed,
      inboxEntriesLost: consumer?.lost ?? 0,
      handlerErrors: (consumer?.handlerErrors ?? 0) + broadcaster.handlerErrors,
      broadcastsSent: broadcaster.sent,
      broadcastsReceived: broadcaster.received,
      redisErrors: pool.errors,
      reconnects: pool.reconnects,
      recoveries: counters.recoveries,
      presenceRehydrated: counters.rehydrated,
      presenceRehydrateRefused: counters.rehydrateRefused,
      evictsSent: counters.evictsSent,
      heartbeatFailures: liveness?.failures ?? 0,
      leaseSuspensions: liveness?.suspensions ?? 0,
      leaseTakenOver: liveness?.takenOver ?? 0,
      leaseKeptThroughStalls: liveness?.keptThroughStalls ?? 0,
      rejoins: counters.rejoins,
      poolSize: pool.size,
      healthy: this.healthIssue() === null ? 1 : 0,
    };
  }
}
