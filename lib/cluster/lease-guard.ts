import { LeaseLostError } from '../protocol/errors.js';
import type { EventAdapterInterface, LeaseChange } from './event-adapter.interface.js';
import type { CallGate } from './local-call.js';

export type LeaseState = 'held' | 'suspended' | 'fenced' | 'lost';

/** How a command that the guard refused while the lease was suspended ends. */
export type SuspensionEnd = 'resumed' | 'fenced';

/**
 * The node's side of fencing. Everything read from the transport is stamped with the
 * incarnation it was read in; it may be written to a socket only while the transport proves the
 * lease (`holdsLease()`), the lease is not suspended, and the incarnation has not changed (a
 * takeover answered everything read before it). A transport without leases always allows.
 */
export class LeaseGuard {
  private current: LeaseState = 'held';
  private generation = 0;
  private waiters: Array<(end: SuspensionEnd) => void> = [];
  private gate: { incarnation: number; gate: CallGate } | null = null;

  constructor(
    private readonly nodeId: string,
    private readonly adapter: EventAdapterInterface,
  ) {}

  get state(): LeaseState {
    return this.current;
  }

  /** The incarnation messages read now belong to. */
  get incarnation(): number {
    return this.generation;
  }

  /** True when something read in `incarnation` may be written to a socket now. */
  mayWrite(incarnation: number): boolean {
    return this.current === 'held' && incarnation === this.generation && (this.adapter.holdsLease?.() ?? true);
  }

  /** True while something read in `incarnation` may still be answered to its caller. */
  mayAnswer(incarnation: number): boolean {
    return incarnation === this.generation && this.current !== 'lost';
  }

  /**
   * The gate for a call carrying something read in `incarnation`: checked right before its frame
   * is written. One per incarnation (not one per command): it holds nothing else.
   */
  gateFor(incarnation: number): CallGate {
    if (this.gate?.incarnation !== incarnation) {
      this.gate = { incarnation, gate: { mayWrite: () => this.mayWrite(incarnation), refusal: () => this.refusal() } };
    }
    return this.gate.gate;
  }

  refusal(): LeaseLostError {
    return new LeaseLostError(this.nodeId);
  }

  /** Resolves once a suspension ends: taken back (`resumed`) or taken over / lost (`fenced`). */
  suspensionEnd(): Promise<SuspensionEnd> {
    if (this.current === 'held') return Promise.resolve('resumed');
    if (this.current !== 'suspended') return Promise.resolve('fenced');
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Applies a change told by the transport; returns the new state. */
  apply(change: LeaseChange): LeaseState {
    switch (change) {
      case 'suspended':
        if (this.current === 'held') this.current = 'suspended';
        break;
      case 'resumed':
        if (this.current === 'suspended') this.current = 'held';
        this.release('resumed');
        break;
      case 'fenced':
        this.generation++;
        this.current = 'fenced';
        this.release('fenced');
        break;
      case 'rejoined':
        if (this.current === 'fenced') this.current = 'held';
        break;
      case 'lost':
        this.generation++;
        this.current = 'lost';
        this.release('fenced');
        break;
    }
    return this.current;
  }

  private release(end: SuspensionEnd): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake(end);
  }
}
