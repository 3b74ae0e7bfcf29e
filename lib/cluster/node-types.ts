import type { OcppProtocol } from '../protocol/protocol.js';

/** A charge point as the public API shows it. */
export interface ChargerInfo {
  identity: string;
  protocol: OcppProtocol;
  nodeId: string;
  connectedAt: string;
}

export interface SendOptions {
  /** Default: the module's `callTimeoutMs`. */
  timeoutMs?: number;
  /**
   * sendToClient / sendRaw only: when the charge point is offline, wait up to this long
   * (cluster-wide, in the transport) for it to connect to any node, then deliver it there.
   * NotDeliveredError when the window ends first. Refused by transports without parking.
   */
  deliverWithinMs?: number;
}

export interface BroadcastOptions extends SendOptions {
  /** Only charge points speaking this protocol. */
  protocol?: OcppProtocol;
}

export interface BroadcastSummary {
  delivered: number;
  failed: number;
  /** Nodes that reported back before the deadline. */
  nodes: number;
}

export type BatchOutcome =
  | { identity: string; status: 'fulfilled'; result: Record<string, unknown> }
  | { identity: string; status: 'rejected'; error: Error };

export interface ConnectionListeners {
  onConnected?(charger: ChargerInfo, session: unknown): void | Promise<void>;
  onDisconnected?(charger: ChargerInfo & { code: number; reason: string }, session: unknown): void | Promise<void>;
}

export interface ClusterNodeMetrics {
  nodeId: string;
  localConnections: number;
  connectionsByProtocol: Record<string, number>;
  inFlightRemoteCalls: number;
  counters: {
    sent: number;
    received: number;
    timeouts: number;
    failures: number;
    remoteSent: number;
    remoteReceived: number;
    badFrames: number;
  };
  redisConsumerLag: { pendingMessages: number; lag: number };
  activeSubscriptions: number;
  adapter: Record<string, number>;
  /** OCPP 2.1 answers kept for retries, and the bytes counted against `retryCache.maxBytesPerNode`. */
  retryCache: { entries: number; bytes: number };
}

export interface DrainReport {
  closed: number;
  reconnectedElsewhere: number;
  durationMs: number;
}
