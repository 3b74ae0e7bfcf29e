/**
 * What the framework-free node reports as it works. The Nest layer plugs in a prom-client
 * implementation; the default discards everything.
 */
export interface ClusterMetricsSink {
  /** A CALL from a charge point was answered (`ok`) or answered with a CALLERROR code. */
  inboundCall(protocol: string, action: string, outcome: string): void;
  /** A call to a charge point settled; `route` says whether it crossed to another node. */
  outboundCall(action: string, route: 'local' | 'remote', outcome: string, seconds: number): void;
  connectionOpened(protocol: string): void;
  connectionClosed(protocol: string): void;
  upgradeRejected(reason: string): void;
  /** A frame the codec refused or a protocol problem on a socket. */
  badFrame(): void;
  presenceOperation(operation: 'claim' | 'remove' | 'lookup', outcome: 'ok' | 'error'): void;
  /** Charge points one node delivered a broadcast to. */
  broadcastFanout(targets: number): void;
}

export const NOOP_METRICS_SINK: ClusterMetricsSink = {
  inboundCall: () => undefined,
  outboundCall: () => undefined,
  connectionOpened: () => undefined,
  connectionClosed: () => undefined,
  upgradeRejected: () => undefined,
  badFrame: () => undefined,
  presenceOperation: () => undefined,
  broadcastFanout: () => undefined,
};

/** A short, bounded label for how a call ended (never free text: it becomes a metric label). */
export function outcomeLabel(error: unknown): string {
  if (error === undefined) return 'ok';
  const code = (error as { code?: unknown })?.code;
  switch (code) {
    case 'OCPP_CALL_ERROR':
      return 'call_error';
    case 'OCPP_TIMEOUT':
      return 'timeout';
    case 'OCPP_NOT_CONNECTED':
    case 'OCPP_CONNECTION_CLOSED':
      return 'not_connected';
    case 'OCPP_VALIDATION':
      return 'validation';
    case 'OCPP_PROTOCOL_MISMATCH':
      return 'protocol_mismatch';
    case 'OCPP_QUEUE_FULL':
      return 'queue_full';
    case 'OCPP_INBOX_FULL':
      return 'inbox_full';
    case 'OCPP_CLUSTER_UNAVAILABLE':
      return 'cluster_unavailable';
    case 'OCPP_SHUTTING_DOWN':
      return 'shutting_down';
    case 'OCPP_INCOMPATIBLE_VERSION':
      return 'incompatible_version';
    default:
      return 'failed';
  }
}
