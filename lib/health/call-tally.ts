import type { Counter } from 'prom-client';

/**
 * Inbound call counts by protocol, action and outcome, kept as plain numbers on the call path and
 * handed to prom-client when it is scraped: its own `inc` builds and hashes a label key per call,
 * a cost every CALL paid.
 */
export class CallTally {
  private readonly counts = new Map<string, Map<string, Map<string, number>>>();

  add(protocol: string, action: string, outcome: string): void {
    let byAction = this.counts.get(protocol);
    if (byAction === undefined) this.counts.set(protocol, (byAction = new Map()));
    let byOutcome = byAction.get(action);
    if (byOutcome === undefined) byAction.set(action, (byOutcome = new Map()));
    byOutcome.set(outcome, (byOutcome.get(outcome) ?? 0) + 1);
  }

  /** Adds what was counted since the last drain to `counter` and starts again from zero. */
  drainInto(counter: Counter<'protocol' | 'action' | 'outcome'>): void {
    for (const [protocol, byAction] of this.counts) {
      for (const [action, byOutcome] of byAction) {
        for (const [outcome, count] of byOutcome) if (count > 0) counter.inc({ protocol, action, outcome }, count);
        byOutcome.clear();
      }
    }
  }
}
