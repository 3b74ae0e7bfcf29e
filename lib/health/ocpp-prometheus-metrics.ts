import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ClusterMetricsSink } from '../cluster/metrics-sink.js';
import type { OcppClusterNode } from '../cluster/ocpp-cluster-node.js';
import { CallTally } from './call-tally.js';

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** A counter whose value is read from elsewhere (the transport's own counters) at scrape time. */
function mirroredCounter(registry: Registry, name: string, help: string, read: () => Promise<number>): void {
  let reported = 0;
  new Counter({
    name,
    help,
    registers: [registry],
    async collect() {
      const value = await read();
      if (value > reported) this.inc(value - reported);
      reported = Math.max(reported, value);
    },
  });
}

/**
 * The module's Prometheus metrics (prom-client), fed by the node as it works and by the
 * transport at scrape time. `registry` is the one to expose (or the app's own, if given).
 */
export class OcppPrometheusMetrics implements ClusterMetricsSink {
  private readonly inboundTally = new CallTally();
  private readonly outboundCalls: Counter<'action' | 'route' | 'outcome'>;
  private readonly outboundLatency: Histogram<'route'>;
  private readonly upgradesRejected: Counter<'reason'>;
  private readonly badFrames: Counter;
  private readonly presenceOperations: Counter<'operation' | 'outcome'>;
  private readonly broadcasts: Counter;
  private readonly broadcastDeliveries: Counter;
  private readonly connectionsOpened: Counter<'protocol'>;
  private node: OcppClusterNode | null = null;

  constructor(readonly registry: Registry = new Registry()) {
    const registers = [registry];
    const inboundTally = this.inboundTally;
    new Counter({
      name: 'ocpp_inbound_calls_total',
      help: 'CALLs from charge points, by outcome (ok or the CALLERROR code sent back)',
      labelNames: ['protocol', 'action', 'outcome'],
      registers,
      collect() {
        inboundTally.drainInto(this);
      },
    });
    this.outboundCalls = new Counter({
      name: 'ocpp_outbound_calls_total',
      help: 'Calls to charge points made on this node, by route (local socket or another node) and outcome',
      labelNames: ['action', 'route', 'outcome'],
      registers,
    });
    this.outboundLatency = new Histogram({
      name: 'ocpp_outbound_call_duration_seconds',
      help: 'Time from sendToClient to the settled outcome, local and cross-node',
      labelNames: ['route'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.upgradesRejected = new Counter({
      name: 'ocpp_upgrades_rejected_total',
      help: 'WebSocket upgrades refused, by reason',
      labelNames: ['reason'],
      registers,
    });
    this.badFrames = new Counter({ name: 'ocpp_bad_frames_total', help: 'Frames refused by the codec or out of protocol', registers });
    this.presenceOperations = new Counter({
      name: 'ocpp_presence_operations_total',
      help: 'Presence claims, removals and lookups made by this node',
      labelNames: ['operation', 'outcome'],
      registers,
    });
    this.broadcasts = new Counter({ name: 'ocpp_broadcasts_received_total', help: 'Broadcasts this node delivered to its sockets', registers });
    this.broadcastDeliveries = new Counter({
      name: 'ocpp_broadcast_fanout_total',
      help: 'Charge points this node delivered broadcasts to (fan-out)',
      registers,
    });
    this.connectionsOpened = new Counter({
      name: 'ocpp_connections_opened_total',
      help: 'Charge point connections accepted, by protocol',
      labelNames: ['protocol'],
      registers,
    });

    const node = () => this.node;
    new Gauge({
      name: 'ocpp_connections',
      help: 'Charge points connected to this node, by protocol',
      labelNames: ['protocol'],
      registers,
      collect() {
        this.reset();
        const counts = node()?.connectionCounts();
        for (const [protocol, count] of Object.entries(counts ?? {})) this.set({ protocol }, count);
      },
    });
    new Gauge({
      name: 'ocpp_remote_calls_in_flight',
      help: 'Calls this node sent to other nodes and still waits for',
      registers,
      collect() {
        this.set(node()?.inFlightRemoteCalls ?? 0);
      },
    });
    const adapterMetrics = async () => (await node()?.transport.metrics()) ?? null;
    new Gauge({
      name: 'ocpp_consumer_lag',
      help: "Commands in this node's inbox not yet handed to a handler (unread, or read and waiting for room), plus unread replies stream entries",
      registers,
      async collect() {
        this.set((await adapterMetrics())?.consumerLag ?? 0);
      },
    });
    new Gauge({
      name: 'ocpp_consumer_pending',
      help: "Inbox commands handed to a handler whose entry is not acknowledged yet, plus replies stream entries read and not acknowledged",
      registers,
      async collect() {
        this.set((await adapterMetrics())?.pendingMessages ?? 0);
      },
    });
    new Gauge({
      name: 'ocpp_transport_healthy',
      help: '1 while the cluster transport (Redis) is connected and this node holds its liveness key',
      registers,
      collect() {
        this.set(node()?.transport.isHealthy() ? 1 : 0);
      },
    });
    mirroredCounter(registry, 'ocpp_redis_errors_total', 'Errors reported by Redis connections', async () => (await adapterMetrics())?.redisErrors ?? 0);
    mirroredCounter(registry, 'ocpp_redis_reconnects_total', 'Redis connections that came back after a loss', async () => (await adapterMetrics())?.reconnects ?? 0);
    mirroredCounter(
      registry,
      'ocpp_lease_kept_through_stall_total',
      "Times this node's event loop ran more than a heartbeat interval behind and the lease keeper thread kept its lease",
      async () => (await adapterMetrics())?.leaseKeptThroughStalls ?? 0,
    );
    mirroredCounter(registry, 'ocpp_node_takeovers_total', "Dead nodes' inboxes this node took over", async () => node()?.nodeLossCounters().takeovers ?? 0);
    mirroredCounter(
      registry,
      'ocpp_inbox_commands_refused_total',
      "Commands this node did not send because the owning node's inbox was full (InboxFullError, never sent)",
      async () => (await adapterMetrics())?.commandsRefused ?? 0,
    );
    mirroredCounter(
      registry,
      'ocpp_inbox_entries_lost_total',
      "Entries of this node's streams deleted (outside the module) before they were handled",
      async () => (await adapterMetrics())?.inboxEntriesLost ?? 0,
    );
  }

  /** Scrape-time gauges read the node; set once the node exists. */
  bind(node: OcppClusterNode): void {
    this.node = node;
  }

  inboundCall(protocol: string, action: string, outcome: string): void {
    this.inboundTally.add(protocol, action, outcome);
  }

  outboundCall(action: string, route: 'local' | 'remote', outcome: string, seconds: number): void {
    this.outboundCalls.inc({ action, route, outcome });
    this.outboundLatency.observe({ route }, seconds);
  }

  connectionOpened(protocol: string): void {
    this.connectionsOpened.inc({ protocol });
  }

  connectionClosed(): void {
    // The ocpp_connections gauge is read from the registry at scrape time.
  }

  upgradeRejected(reason: string): void {
    this.upgradesRejected.inc({ reason });
  }

  badFrame(): void {
    this.badFrames.inc();
  }

  presenceOperation(operation: 'claim' | 'remove' | 'lookup', outcome: 'ok' | 'error'): void {
    this.presenceOperations.inc({ operation, outcome });
  }

  broadcastFanout(targets: number): void {
    this.broadcasts.inc();
    this.broadcastDeliveries.inc(targets);
  }

  /** Prometheus text exposition of the registry. */
  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
