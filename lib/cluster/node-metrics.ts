import type { AnsweredCalls } from '../protocol/answered-calls.js';
import type { AdapterMetrics } from './event-adapter.interface.js';
import type { HandlerRegistry } from './handler-registry.js';
import type { LocalRegistry } from './local-registry.js';
import type { ClusterMetricsSink } from './metrics-sink.js';
import type { ClusterNodeMetrics } from './node-types.js';

/** The node's counters, the sink the Nest layer plugs in, and bounded action labels. */
export class NodeMetrics {
  readonly counters = { sent: 0, received: 0, timeouts: 0, failures: 0, remoteSent: 0, remoteReceived: 0, badFrames: 0 };
  /** Actions the configured protocols define (metric labels stay bounded: others count as "unknown"). */
  private knownActions = new Set<string>();

  constructor(
    readonly sink: ClusterMetricsSink,
    private readonly handlers: HandlerRegistry,
  ) {}

  knowActions(actions: Iterable<string>): void {
    this.knownActions = new Set(actions);
  }

  /** A label that cannot grow without bound whatever charge points or callers send. */
  actionLabel(action: string): string {
    return this.knownActions.has(action) || this.handlers.hasAnyHandler(action) ? action : 'unknown';
  }

  snapshot(
    nodeId: string,
    registry: LocalRegistry,
    inFlightRemoteCalls: number,
    adapterMetrics: AdapterMetrics,
    answeredCalls: AnsweredCalls,
  ): ClusterNodeMetrics {
    return {
      nodeId,
      localConnections: registry.size,
      connectionsByProtocol: registry.countByProtocol(),
      inFlightRemoteCalls,
      counters: { ...this.counters },
      redisConsumerLag: { pendingMessages: adapterMetrics.pendingMessages, lag: adapterMetrics.consumerLag },
      activeSubscriptions: adapterMetrics.activeSubscriptions,
      adapter: { ...adapterMetrics },
      retryCache: { entries: answeredCalls.size, bytes: answeredCalls.bytes },
    };
  }
}
