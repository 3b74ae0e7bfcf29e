import type { EventAdapterInterface } from './event-adapter.interface.js';
import type { LeaseGuard } from './lease-guard.js';
import type { ClusterLogger } from './logger.js';

export type Acceptance = { ok: true } | { ok: false; status: number; reason: string };

export interface AdmissionDeps {
  adapter: EventAdapterInterface;
  lease: LeaseGuard;
  logger: ClusterLogger;
  refuseUpgradesWhileTransportDown: boolean;
  isStopping: () => boolean;
  isDraining: () => boolean;
}

/** Whether this node takes new charge points now, and a log line each time the answer changes. */
export class Admission {
  /** Why the last upgrade was refused (null: accepted), so refusals are logged once per change. */
  private lastRefusal: string | null = null;

  constructor(private readonly deps: AdmissionDeps) {}

  acceptance(): Acceptance {
    const { adapter, lease } = this.deps;
    if (this.deps.isStopping()) return { ok: false, status: 503, reason: 'shutting down' };
    if (lease.state !== 'held') return { ok: false, status: 503, reason: `lease ${lease.state}` };
    if (this.deps.isDraining()) return { ok: false, status: 503, reason: 'draining' };
    if (this.deps.refuseUpgradesWhileTransportDown) {
      // One check: healthIssue() where the adapter says why, isHealthy() where it cannot.
      const issue = adapter.healthIssue ? adapter.healthIssue() : adapter.isHealthy() ? null : '';
      if (issue !== null) {
        return { ok: false, status: 503, reason: issue ? `cluster transport unavailable (${issue})` : 'cluster transport unavailable' };
      }
    }
    return { ok: true };
  }

  /** acceptance() for the gateway, logging when the node starts and stops refusing charge points. */
  forUpgrade(): Acceptance {
    const verdict = this.acceptance();
    this.noteRefusal(verdict.ok ? null : verdict);
    return verdict;
  }

  /** Logs when the node starts and stops refusing charge points (once per change of reason). */
  noteRefusal(refusal: { status: number; reason: string } | null): void {
    const reason = refusal?.reason ?? null;
    if (reason === this.lastRefusal) return;
    this.lastRefusal = reason;
    if (refusal) this.deps.logger.warn(`refusing new charge points with ${refusal.status}: ${refusal.reason}`);
    else this.deps.logger.log('accepting new charge points again');
  }
}
