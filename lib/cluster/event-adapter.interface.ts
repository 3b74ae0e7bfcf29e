import type { OcppProtocol } from '../protocol/protocol.js';
import type { Address, Subscription } from './address.js';
import type { ClusterMessage } from './envelope.js';
import type { ParkedCommandStore } from './parked-command.js';

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

/** What the transport knows about a delivery. */
export interface DeliveryInfo {
  /**
   * The message was read before, by this node's consumer in an earlier incarnation (a crashed,
   * restarted or taken-over process): it may have reached the charge point already.
   */
  redelivered?: boolean;
}

/** Resolving the promise acknowledges the message (a stream transport ACKs only then). */
export type ClusterMessageHandler = (message: ClusterMessage, delivery?: DeliveryInfo) => void | Promise<void>;

/**
 * What happened to this node's lease (fencing), as told by a transport with leases:
 * - `suspended`: the node cannot prove it still holds its lease; write nothing it read from the
 *   transport to a socket until `resumed`.
 * - `resumed`: the lease is proven again and nobody took the node over meanwhile.
 * - `fenced`: another node took this one over while its lease had lapsed: what it read before
 *   was answered by someone else and must never be sent or answered; close the sockets.
 * - `rejoined`: back in the cluster under a fresh incarnation after `fenced`.
 * - `lost`: another process holds this node id: stop serving for good.
 */
export type LeaseChange = 'suspended' | 'resumed' | 'fenced' | 'rejoined' | 'lost';

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

/**
 * What a transport that re-registers presence (after a reconnect, a restart of its store, a
 * claim that failed) learns, told to the node, which owns its connections and their epochs:
 * - `registered`: a socket accepted while claims failed (epoch 0) now holds `epoch`;
 * - `superseded`: a newer connection on `newOwner` holds the identity: close ours at `epoch`;
 * - `displaced`: ours replaced `previous`, an older connection on another live node: evict it.
 */
export type PresenceRestore =
  | { kind: 'registered'; identity: string; epoch: number }
  | { kind: 'superseded'; identity: string; epoch: number; newOwner: string }
  | { kind: 'displaced'; identity: string; previous: PresenceRecord };

/** What the node gives its transport at connect(): its connections, and where to tell it what happened. */
export interface PresenceSnapshotSource {
  /** This node's live connections (identity, epoch, protocol, connectedAt); epoch 0: never registered. */
  localPresence(): PresenceRecord[];
  /** Told about every change of this node's lease (fencing); see LeaseChange. */
  onLeaseChange?(change: LeaseChange): void;
  /**
   * Told what a re-registration found (see PresenceRestore). Returns false for `registered` when
   * the socket is gone or holds an epoch already (the transport then removes what it wrote).
   */
  onPresenceRestored?(restore: PresenceRestore): boolean | void;
}

/** One entry of a lost node's inbox (see NodeLossPrimitives). */
export interface PendingEntry {
  /** Null when the entry could not be read as a message (it is settled all the same). */
  readonly message: ClusterMessage | null;
  /** The lost node had read it before it died: it may have reached the charge point. */
  readonly delivered: boolean;
}

/** What finishing a takeover did: `more` means entries arrived meanwhile (read again), `returned` that the node came back. */
export interface LostNodeFinish {
  status: 'done' | 'more' | 'returned';
  /** Presence entries that still named the lost node and were removed. */
  presenceRemoved: number;
}

/** Exclusive hold on a lost node, from claimLostNode() until release(). */
export interface LostNodeClaim {
  readonly nodeId: string;
  /**
   * The next entries of its inbox, those it had read first (`delivered`), then those it never
   * read; [] once none is left; null as soon as the claim no longer holds (the node came back,
   * this node's own lease is in doubt, the claim expired): stop.
   */
  next(): Promise<PendingEntry[] | null>;
  /** The entry was handled: it is never handed out again (to a restart of the node either). */
  settle(entry: PendingEntry): Promise<void>;
  /** Optional: settle() for several entries in one go (without it they are settled one by one). */
  settleMany?(entries: readonly PendingEntry[]): Promise<void>;
  /** Removes the lost node's presence and state, only once nothing is left in its inbox. */
  finish(): Promise<LostNodeFinish>;
  /** Gives the claim up (called once, whatever happened). */
  release(): Promise<void>;
}

/**
 * The primitives of node loss (optional, together). With them the cluster layer answers a dead
 * node's pending commands, or forwards them to the charge point's new owner, within about the
 * liveness TTL, and the dead node is fenced (README "Writing a transport"). Without them callers
 * wait for their own timeout.
 */
export interface NodeLossPrimitives {
  /**
   * Nodes that joined, are not alive now and still hold state (an inbox, presence). Empty while
   * this node cannot judge others (its own lease unproven, the transport stalled recently).
   */
  lostNodes(): Promise<string[]>;
  /**
   * Takes `nodeId` over, exclusively across the cluster, and fences it: should it wake, it learns
   * it was taken over before it serves anything it read. Null when another node holds it, it was
   * cleared already, or it is alive after all.
   */
  claimLostNode(nodeId: string): Promise<LostNodeClaim | null>;
  /** How often the cluster layer should look for lost nodes (optional, default 1000 ms). */
  readonly lossCheckIntervalMs?: number;
}

/**
 * A cluster transport: it moves messages to the address it is given and never reads them. The
 * method names follow ocpp-ws-io's adapter interface where they overlap (publish, publishBatch,
 * subscribe, unsubscribe, disconnect, setPresence, getPresence, removePresence); the rest is what
 * the cluster contract needs.
 *
 * Addresses (address.ts) are `inboxOf(id)` / `repliesOf(id)` (one node, at-least-once,
 * acknowledged when the handler settles) and `ALL_NODES`; the cluster layer chooses them.
 */
export interface EventAdapterInterface extends Partial<NodeLossPrimitives> {
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

  /** Delivers `message` to `to`; messages to one node arrive in publish order (per lane). */
  publish(to: Address, message: ClusterMessage): Promise<void>;
  publishBatch(messages: ReadonlyArray<{ to: Address; message: ClusterMessage }>): Promise<void>;
  /** `node`: this node's own address (both lanes); `allNodes`: what is published to ALL_NODES. */
  subscribe(subscription: Subscription, handler: ClusterMessageHandler): Promise<void>;
  unsubscribe(subscription: Subscription): Promise<void>;

  /** Claims `identity` for this node with a new, higher epoch (newest connection wins). */
  setPresence(identity: string, protocol: OcppProtocol, connectedAt: number): Promise<PresenceClaim>;
  /** The owner, or null when nobody owns it or the owner's node is not alive. */
  getPresence(identity: string): Promise<PresenceRecord | null>;
  /** Owners of many identities (absent ones are left out). */
  getPresenceBatch(identities: readonly string[]): Promise<Map<string, PresenceRecord>>;
  /** Removes the entry only while this node still owns it at `epoch`. */
  removePresence(identity: string, epoch: number): Promise<boolean>;
  /**
   * A claim whose handshake never opened (the client left first): like removePresence, except
   * that `claim.previous`, the live owner it displaced, gets the identity back, so its open
   * socket does not go unlisted. Optional: without it the node calls removePresence.
   */
  releaseClaim?(claim: PresenceClaim): Promise<boolean>;
  /** Every live owner in the cluster. */
  listPresence(): Promise<PresenceRecord[]>;
  /** True while `nodeId` holds its liveness key. */
  isNodeAlive(nodeId: string): Promise<boolean>;
  /**
   * True when the transport knows, without I/O, that `nodeId` is alive (a fresh answer of
   * `isNodeAlive`); false means "ask isNodeAlive". Optional: lets a caller route a command to a
   * remembered owner without waiting a turn.
   */
  isNodeKnownAlive?(nodeId: string): boolean;
  /** Every node alive now, this one included (cheap: no presence read). */
  liveNodes(): Promise<string[]>;
  /**
   * Fencing: whether this node can prove, now and without I/O, that it still holds its lease.
   * Checked before every command read from the transport is written to a socket. A transport
   * without leases (in memory: one process) leaves it out, which counts as always true.
   */
  holdsLease?(): boolean;
  /**
   * Why presence read now may be incomplete or stale (a stall of the transport, a recovery moments
   * ago), or null. A caller that finds no owner while in doubt answers "unavailable", never
   * "not connected". Optional: a transport without it is always trusted.
   */
  presenceDoubt?(): string | null;

  /**
   * Commands parked for offline charge points (`deliverWithinMs`), shared by every node and
   * outliving each. Optional: without it `deliverWithinMs` is refused (UnsupportedByTransportError).
   */
  readonly parkedCommands?: ParkedCommandStore;

  /** True while the transport can carry messages (e.g. Redis connected). Cheap: no I/O. */
  isHealthy(): boolean;
  /** Why isHealthy() is false, for logs and readiness (optional). */
  healthIssue?(): string | null;
  /** Pings every connection and checks liveness and the consumer, each within `timeoutMs`. */
  probe(timeoutMs: number): Promise<TransportProbe>;
  metrics(): Promise<AdapterMetrics>;
}
