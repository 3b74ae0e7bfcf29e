import type { EventAdapterInterface } from './event-adapter.interface.js';
import { EventLoopDelay } from './event-loop-delay.js';
import type { LeaseGuard } from './lease-guard.js';
import type { ClusterLogger } from './logger.js';

export type Acceptance =
  | { ok: true }
  | {
      ok: false;
      status: number;
      reason: string;
      /** Refused because the event loop is behind (see EventLoopDelay): try again in a moment. */
      overloaded?: boolean;
      /** Sent as Retry-After. */
      retryAfterS?: number;
    };

/** Retry-After of an upgrade refused for overload: the loop usually catches up within a second. */
const OVERLOAD_RETRY_AFTER_S = 1;

export interface AdmissionDeps {
  adapter: EventAdapterInterface;
  lease: LeaseGuard;
  logger: ClusterLogger;
  refuseUpgradesWhileTransportDown: boolean;
  isStopping: () => boolean;
  isDraining: () => boolean;
  /** Upgrades are refused while the event loop is later than this (false: never). */
  maxEventLoopDelayMs: number | false;
}

/** Whether this node takes new charge points now, and a log line each time the answer changes. */
export class Admission {
  /** Why the last upgrade was refused (null: accepted), so refusals are logged once per change. */
  private lastRefusal: string | null = null;
  private readonly loopDelay = new EventLoopDelay();

  constructor(private readonly deps: AdmissionDeps) {}

  /** Starts measuring the event loop's lateness (only when upgrades are refused for it). */
  watchLoad(): void {
    if (this.deps.maxEventLoopDelayMs !== false) this.loopDelay.start();
  }

  stopWatchingLoad(): void {
    this.loopDelay.stop();
  }

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

  /**
   * acceptance() for the gateway, plus overload: while the event loop is behind, a new charge
   * point would only add work that delays the lease refresh and every open socket (readiness
   * does not say this: a node that is merely busy must not be taken out of the load balancer).
   * Logs when the node starts and stops refusing charge points.
   */
  forUpgrade(): Acceptance {
    const accepted = this.acceptance();
    const verdict = accepted.ok ? this.overload() : accepted;
    this.noteRefusal(verdict.ok ? null : verdict);
    return verdict;
  }

  private overload(): Acceptance {
    const limitMs = this.deps.maxEventLoopDelayMs;
    if (limitMs === false || this.loopDelay.sustainedMs() <= limitMs) return { ok: true };
    // A fixed reason: refusals are logged once per change of reason, not once per delay measured.
    return { ok: false, status: 503, reason: `overloaded (event loop more than ${limitMs} ms behind)`, overloaded: true, retryAfterS: OVERLOAD_RETRY_AFTER_S };
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
