import type { OcppProtocol } from '../protocol/protocol.js';

/**
 * What travels between nodes. One place defines every message kind so transports
 * (in-memory, Redis) only move opaque objects and never interpret them.
 */

/** A command for one charge point, sent to the inbox of the node that holds its socket. */
export interface CommandEnvelope {
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
    };

/** The outcome of a command, sent back to the origin's inbox. */
export interface ReplyEnvelope {
  kind: 'reply';
  id: string;
  /** Node that produced the outcome. */
  from: string;
  identity: string;
  outcome: CommandOutcome;
}

/** A call for every connected charge point (optionally one protocol only). */
export interface BroadcastEnvelope {
  kind: 'broadcast';
  id: string;
  origin: string;
  action: string;
  payload: Record<string, unknown>;
  protocol?: OcppProtocol;
  deadline: number;
}

/** Tells a node that a newer connection elsewhere won this identity: close the stale socket. */
export interface EvictEnvelope {
  kind: 'evict';
  identity: string;
  /** Epoch of the connection that must close (newer ones on the same node stay). */
  epoch: number;
  /** Node that now owns the identity. */
  newOwner: string;
}

/** A node announces it is leaving cleanly (no takeover needed). */
export interface NodeLeftEnvelope {
  kind: 'nodeLeft';
  nodeId: string;
}

export type ClusterMessage = CommandEnvelope | ReplyEnvelope | BroadcastEnvelope | EvictEnvelope | NodeLeftEnvelope;

/** The channel of a minimal (seed-shaped) transport that reaches every node. */
export const BROADCAST_CHANNEL = 'broadcast';

/** The channel of a minimal (seed-shaped) transport for one node (its inbox and replies). */
export function nodeChannel(nodeId: string): string {
  return `node:${nodeId}`;
}
