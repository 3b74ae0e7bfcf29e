import type { OcppProtocol } from '../protocol/protocol.js';
import type { ClusterMessage } from './envelope.js';

/** identity → the connection that currently owns it. */
export interface PresenceRecord {
  identity: string;
  nodeId: string;
  /** Monotonic per identity across the cluster: the newest connection has the highest epoch. */
  epoch: number;
  protocol: OcppProtocol;
  /** Epoch ms. */
  connectedAt: number;
}

export interface PresenceClaim {
  record: PresenceRecord;
  /** Who held the identity before this claim (null if nobody, or its node is not alive). */
  previous: PresenceRecord | null;
}

/** Resolving the promise acknowledges the message (a stream transport ACKs only then). */
export type ClusterMessageHandler = (message: ClusterMessage) => void | Promise<void>;

export interface AdapterMetrics {
  /** Entries delivered to this node but not acknowledged yet. */
  pendingMessages: number;
  /**
   * Entries in this node's streams not yet delivered to its consumer group (real lag, not stream
   * length); the Redis transport counts its inbox and its replies stream.
   */
  consumerLag: number;
  activeSubscriptions: number;
  [extra: string]: number;
}

/** A readiness check of the transport, answered within a bound (never throws). */
export interface TransportProbe {
  /** Per connection (writer, subscriber, blocking reader...): did it answer PING, and how fast. */
  connections: Record<string, { ok: boolean; rttMs: number | null; error?: string }>;
  /** This node still holds its liveness key (no other process took the node id). */
  livenessHeld: boolean;
  /** The inbox consumer is reading. */
  consumerRunning: boolean;
  consumerLag: number;
  pendingMessages: number;
}

/** What is needed to take part in presence rehydration after the transport reconnects. */
export interface PresenceSnapshotSource {
  /** This node's live connections (identity, epoch, protocol, connectedAt). */
  localPresence(): PresenceRecord[];
}

/**
 * A cluster transport. The method names follow ocpp-ws-io's adapter interface where they
 * overlap (publish, publishBatch, subscribe, unsubscribe, disconnect, setPresence,
 * getPresence, removePresence); the rest is what the cluster contract needs.
 *
 * Channels are `BROADCAST_CHANNEL` (every node) and `nodeChannel(id)` (one node's inbox,
 * at-least-once, acknowledged when the handler settles).
 */
export interface EventAdapterInterface {
  readonly name: string;
  /**
   * Joins the cluster as `nodeId` and starts keeping this node alive.
   * Rejects with `NodeIdConflictError` when another live process holds the id.
   */
  connect(nodeId: string, source: PresenceSnapshotSource): Promise<void>;
  /** Leaves the cluster cleanly: ends every subscription, tells the others, drops liveness; does not close user-built clients. */
  disconnect(): Promise<void>;
  /** Drops every connection at once, without clean-up (optional): used when disconnect() overruns its bound at shutdown. */
  abort?(): void;

  publish(channel: string, message: ClusterMessage): Promise<void>;
  publishBatch(messages: ReadonlyArray<{ channel: string; message: ClusterMessage }>): Promise<void>;
  subscribe(channel: string, handler: ClusterMessageHandler): Promise<void>;
  unsubscribe(channel: string): Promise<void>;

  /** Claims `identity` for this node with a new, higher epoch (newest connection wins). */
  setPresence(identity: string, protocol: OcppProtocol, connectedAt: number): Promise<PresenceClaim>;
  /** The owner, or null when nobody owns it or the owner's node is not alive. */
  getPresence(identity: string): Promise<PresenceRecord | null>;
  /** Owners of many identities (absent ones are left out). */
  getPresenceBatch(identities: readonly string[]): Promise<Map<string, PresenceRecord>>;
  /** Removes the entry only while this node still owns it at `epoch`. */
  removePresence(identity: string, epoch: number): Promise<boolean>;
  /** Every live owner in the cluster. */
  listPresence(): Promise<PresenceRecord[]>;
  /** True while `nodeId` holds its liveness key. */
  isNodeAlive(nodeId: string): Promise<boolean>;

  /** True while the transport can carry messages (e.g. Redis connected). Cheap: no I/O. */
  isHealthy(): boolean;
  /** Why isHealthy() is false, for logs and readiness (optional). */
  healthIssue?(): string | null;
  /** Pings every connection and checks liveness and the consumer, each within `timeoutMs`. */
  probe(timeoutMs: number): Promise<TransportProbe>;
  metrics(): Promise<AdapterMetrics>;
}
