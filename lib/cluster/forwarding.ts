import type { CommandEnvelope } from './envelope.js';
import type { PresenceRecord } from './event-adapter.interface.js';

/**
 * The one forwarding policy, used by the owner that no longer holds the socket (the inbox) and
 * by a survivor draining a dead node's inbox (the Redis takeover): a command follows its charge
 * point to the node that owns it now, at most MAX_HOPS times in all, and only while its
 * deadline is ahead.
 */

/** Forwarding limit when a command's target keeps moving between nodes. */
export const MAX_HOPS = 3;

/** Whether the command may still go one hop further (checked before looking its owner up). */
export function mayForward(command: CommandEnvelope): boolean {
  return (command.hops ?? 0) < MAX_HOPS;
}

/** The node to forward to: the current owner, unless there is none, it is `notTo`, or the deadline passed. */
export function forwardingTarget(command: CommandEnvelope, owner: PresenceRecord | null, notTo: string, now = Date.now()): string | null {
  if (!owner || owner.nodeId === notTo || now >= command.deadline) return null;
  return owner.nodeId;
}

/**
 * The command as it travels on: one more hop, in the wire version it came in (`v` kept even when
 * absent, so the forwarding node does not stamp its own and the owner answers in the caller's).
 */
export function forwarded(command: CommandEnvelope): CommandEnvelope {
  return { ...command, v: command.v, hops: (command.hops ?? 0) + 1 };
}
