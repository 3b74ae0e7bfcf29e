import type { OcppProtocol } from '../protocol/protocol.js';
import type { TraceCarrier } from './tracing.js';

/**
 * What travels between nodes. One place defines every message kind so transports
 * (in-memory, Redis) only move opaque objects and never interpret them.
 */

/**
 * The wire version of this library. 1 is the format from before the field existed (no `v`); 2
 * adds `v` and nothing else; 3 changes no envelope: a node of version 3 reads an entry of its
 * replies stream that holds several replies (REPLY_BATCH_VERSION); 4 changes no envelope either:
 * a node of version 4 reads, takes over and acknowledges an inbox entry that holds several
 * commands (PACKED_COMMANDS_VERSION). `kind`, `id`, `origin`/`from`, `identity` and `v` are the
 * frame every version keeps, so a node can answer an envelope it cannot read (README, "Wire version").
 */
export const WIRE_VERSION = 4;
/** The oldest format this library still reads. */
export const OLDEST_READABLE_WIRE_VERSION = 1;
/** From this version on a node reads several replies to it in one stream entry (a reply written in it may travel so). */
export const REPLY_BATCH_VERSION = 3;
/**
 * From this version on a node reads, takes over and acknowledges (keeping its inbox cap in
 * commands) an inbox entry that holds several commands. A caller learns it from the node's
 * replies (their `v`), and packs only for such nodes.
 */
export const PACKED_COMMANDS_VERSION = 4;
/** The newest version that changed an envelope's format (3 and 4 changed only stream entries). */
const NEWEST_ENVELOPE_FORMAT = 2;

/** The fields every envelope carries from wire version 2 on. */
export interface Versioned {
  /** Wire version of the envelope's format; absent = 1. */
  v?: number;
  /**
   * The newest version the writer reads, when newer than `v` (absent: `v`). A node whose version
   * changed no envelope writes the older format, which older nodes still read, and says here
   * what its answers may use.
   */
  reads?: number;
}

/** An envelope's wire version: absent is 1; anything but a positive integer is unreadable (0). */
export function wireVersionOf(message: Versioned): number {
  const version = message.v;
  if (version === undefined) return 1;
  return Number.isSafeInteger(version) && version > 0 ? version : 0;
}

/** The newest version the writer of `message` reads: `reads` when it is a valid version above `v`. */
export function readsVersionOf(message: Versioned): number {
  const written = wireVersionOf(message);
  const reads = message.reads;
  return typeof reads === 'number' && Number.isSafeInteger(reads) && reads > written ? reads : written;
}

/**
 * The format a node of version `own` writes its envelopes in: versions 3 and 4 changed none, so
 * they write 2 (read by version 2 nodes too) and announce their own in `reads`.
 */
export function writtenVersion(own: number): number {
  return own >= REPLY_BATCH_VERSION && own <= PACKED_COMMANDS_VERSION ? NEWEST_ENVELOPE_FORMAT : own;
}

/** The version fields of an envelope written by a node of version `own` (none for 1). */
export function versionFields(own: number): Versioned {
  const v = writtenVersion(own);
  if (v === 1) return {};
  return v < own ? { v, reads: own } : { v };
}

/**
 * The `v` of an answer (a reply, a broadcast report) to `message` from a node of version `own`:
 * the newest version the asker reads when it is older than ours, so that it can read it;
 * undefined (no field) for 1.
 */
export function answerVersion(own: number, message: Versioned): number | undefined {
  const version = Math.max(OLDEST_READABLE_WIRE_VERSION, Math.min(own, readsVersionOf(message)));
  return version === 1 ? undefined : version;
}

/** A command for one charge point, sent to the inbox of the node that holds its socket. */
export interface CommandEnvelope extends Versioned {
  kind: 'command';
  /** Correlation id, unique per call across the cluster. */
  id: string;
  /** Node that waits for the reply. */
  origin: string;
  identity: string;
  action: string;
  payload: Record<string, unknown>;
  protocol?: OcppProtocol;
  /** Absolute deadline (epoch ms): the command is never sent to the charge point after it. */
  deadline: number;
  /** OCPP 2.1 SEND: delivered without waiting for (or expecting) an answer. */
  fireAndForget?: boolean;
  /** How many times the command was forwarded after its target moved (loop guard). */
  hops?: number;
  /**
   * `deliverWithinMs`: until `deliverBy` (epoch ms) an owner that finds the charge point gone
   * parks the command again (it waits for the next connection) instead of answering not
   * connected; `timeoutMs` is the call's own timeout, counted from each delivery attempt;
   * `attempt` counts the times it was parked again (a new delivery, not a duplicate).
   */
  parked?: { deliverBy: number; timeoutMs: number; attempt?: number };
  /** W3C trace context of the hop that sent it (OpenTelemetry; absent when nothing traces). */
  trace?: TraceCarrier;
}

export type CommandOutcome =
  | { status: 'result'; payload: Record<string, unknown> }
  | { status: 'callError'; errorCode: string; errorDescription: string; errorDetails: Record<string, unknown> }
  | { status: 'timeout'; sent: boolean }
  | { status: 'notConnected'; reason?: string; maybeDelivered?: boolean }
  | {
      status: 'validation';
      direction: 'request' | 'response';
      errorCode: string;
      description: string;
      details: Record<string, unknown>;
    }
  | { status: 'protocolMismatch'; actual: string }
  | {
      status: 'failed';
      errorCode: string;
      message: string;
      /** QueueFullError, InboxFullError: the limit that refused the call. */
      limit?: number;
      /** InboxFullError: the node whose inbox refused the command, and how many commands it held. */
      nodeId?: string;
      queued?: number;
      /** IncompatibleVersionError: the version the node met, and the newest it reads. */
      receivedVersion?: number;
      supportedVersion?: number;
    };

/** The outcome of a command, sent back to the origin's inbox. */
export interface ReplyEnvelope extends Versioned {
  kind: 'reply';
  id: string;
  /** Node that produced the outcome. */
  from: string;
  identity: string;
  outcome: CommandOutcome;
  /** W3C trace context of the hop that sent it back (OpenTelemetry; absent when nothing traces). */
  trace?: TraceCarrier;
}

/** A call for every connected charge point (optionally one protocol only). */
export interface BroadcastEnvelope extends Versioned {
  kind: 'broadcast';
  id: string;
  origin: string;
  action: string;
  payload: Record<string, unknown>;
  protocol?: OcppProtocol;
  deadline: number;
}

/** Tells a node that a newer connection elsewhere won this identity: close the stale socket. */
export interface EvictEnvelope extends Versioned {
  kind: 'evict';
  identity: string;
  /** Epoch of the connection that must close (newer ones on the same node stay). */
  epoch: number;
  /** Node that now owns the identity. */
  newOwner: string;
}

/** A node announces it is leaving cleanly (no takeover needed). */
export interface NodeLeftEnvelope extends Versioned {
  kind: 'nodeLeft';
  nodeId: string;
}

/**
 * A caller parked a command for a charge point this node holds (`deliverWithinMs`) just as it
 * connected: deliver what is parked for it now (the connection's own drain may have run first).
 */
export interface DeliverParkedEnvelope extends Versioned {
  kind: 'deliverParked';
  identity: string;
}

export type ClusterMessage = CommandEnvelope | ReplyEnvelope | BroadcastEnvelope | EvictEnvelope | NodeLeftEnvelope | DeliverParkedEnvelope;

/** The channel of a minimal (seed-shaped) transport that reaches every node. */
export const BROADCAST_CHANNEL = 'broadcast';

/** The channel of a minimal (seed-shaped) transport for one node (its inbox and replies). */
export function nodeChannel(nodeId: string): string {
  return `node:${nodeId}`;
}
