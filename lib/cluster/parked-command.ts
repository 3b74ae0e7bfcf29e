import type { CommandEnvelope } from './envelope.js';

/**
 * A command waiting, cluster-wide, for its offline charge point to connect (`deliverWithinMs`).
 * Its `command.deadline` is `deliverBy + timeoutMs`: the latest the caller waits for an answer.
 */
export interface ParkedCommand {
  command: CommandEnvelope;
  /** Epoch ms: the delivery window ends here. Taken after it, it is never sent. */
  deliverBy: number;
  /** The call's own timeout, counted from the moment a node takes it for delivery. */
  timeoutMs: number;
}

/**
 * The transport capability behind `deliverWithinMs`: per charge point, an ordered list of parked
 * commands that outlives any node. Taking and withdrawing are atomic against each other, so
 * exactly one of "a node took it for delivery" and "its caller withdrew it" happens.
 */
export interface ParkedCommandStore {
  /** Appends to the identity's list (rejects with QueueFullError at `limit` parked commands). */
  park(identity: string, entry: ParkedCommand): Promise<void>;
  /** Removes and returns, in parking order, every entry whose window is still open at `now`. */
  takeDue(identity: string, now: number): Promise<ParkedCommand[]>;
  /** Removes one entry; true when it was still parked, i.e. no node took it and none ever will. */
  withdraw(identity: string, commandId: string): Promise<boolean>;
}

/** Most commands parked per charge point: more are refused (QueueFullError) rather than piling up. */
export const MAX_PARKED_PER_CHARGER = 1_000;
