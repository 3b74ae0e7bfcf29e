import { OcppTimeoutError } from '../protocol/errors.js';
import { DeadlineSweeper } from './deadline-sweeper.js';
import type { CommandOutcome } from './envelope.js';
import { settleOutcome } from './outcome.js';

/** How long a caller waits past a command's deadline for the owner's answer, and the owner keeps trying to deliver it. */
export const REPLY_GRACE_MS = 1_000;

interface PendingCall {
  identity: string;
  action: string;
  timeoutMs: number;
  expectedProtocol?: string;
  resolve(result: Record<string, unknown>): void;
  reject(error: unknown): void;
  /** Deadline slot in the sweeper. */
  slot: number;
}

/**
 * Calls this node sent to other nodes, waiting for their reply envelope (correlated by id).
 * The owner never sends a command after its deadline and answers `timeout` itself; the grace
 * lets that precise answer arrive before we give up on our own.
 */
export class RemoteCalls {
  private readonly pending = new Map<string, PendingCall>();
  private readonly deadlines = new DeadlineSweeper<string>((id) => this.expire(id));
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly replyGraceMs = REPLY_GRACE_MS) {}

  get size(): number {
    return this.pending.size;
  }

  wait(
    id: string,
    call: { identity: string; action: string; timeoutMs: number; deadline: number; expectedProtocol?: string },
  ): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const slot = this.deadlines.add(id, Math.max(call.deadline, Date.now()) + this.replyGraceMs);
      this.pending.set(id, {
        identity: call.identity,
        action: call.action,
        timeoutMs: call.timeoutMs,
        expectedProtocol: call.expectedProtocol,
        resolve,
        reject,
        slot,
      });
    });
  }

  /** Settles the call with the owner's outcome; false when nobody waits for it any more. */
  settle(id: string, outcome: CommandOutcome): boolean {
    const call = this.take(id);
    if (!call) return false;
    try {
      call.resolve(settleOutcome(outcome, call));
    } catch (error) {
      call.reject(error);
    }
    return true;
  }

  /** Fails one waiting call (e.g. the publish itself failed). */
  fail(id: string, error: unknown): void {
    this.take(id)?.reject(error);
  }

  /** Resolves once no call waits any more (each ends with its reply, or at its deadline + grace). */
  idle(): Promise<void> {
    if (this.pending.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  failAll(error: () => unknown): void {
    for (const id of [...this.pending.keys()]) this.fail(id, error());
    this.deadlines.clear();
  }

  private take(id: string): PendingCall | undefined {
    const call = this.pending.get(id);
    if (!call) return undefined;
    this.pending.delete(id);
    this.deadlines.remove(id, call.slot);
    if (this.pending.size === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const wake of waiters) wake();
    }
    return call;
  }

  private expire(id: string): void {
    // The sweeper already dropped the deadline's slot: take()'s remove is a no-op here.
    const call = this.take(id);
    if (!call) return;
    // No word from the owner: it may have sent the call before the deadline.
    call.reject(new OcppTimeoutError(call.identity, call.action, call.timeoutMs, true));
  }
}
