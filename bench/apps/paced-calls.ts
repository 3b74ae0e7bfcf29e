import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { LatencyRecorder, type LatencySummary } from '../simulator/stats.js';

export interface PacedCallOptions {
  identities: string[];
  ratePerSecond: number;
  durationMs: number;
  timeoutMs: number;
}

export interface PacedCallResult {
  issued: number;
  ok: number;
  errorKinds: Record<string, number>;
  /** Settled later than their deadline plus 2 s: a caller left waiting past what it was promised. */
  late: number;
  /** The late ones by outcome ('ok' or the error's kind). */
  lateKinds: Record<string, number>;
  /** The first late ones (up to 500): when each was sent (epoch ms), how long past its deadline it settled, and how. */
  lateSamples: Array<{ sentAt: number; overMs: number; kind: string }>;
  /** Never settled by the end (deadline + 10 s after the last call): lost. */
  unsettled: number;
  latencyMs: LatencySummary;
}

/**
 * Calls at a steady rate to identities picked at random (the soak's cross-node commands), every
 * outcome counted: answered, typed error by kind, late, never settled.
 */
export async function pacedCalls(send: (identity: string) => Promise<unknown>, options: PacedCallOptions): Promise<PacedCallResult> {
  const recorder = new LatencyRecorder();
  const errorKinds: Record<string, number> = {};
  let issued = 0;
  let ok = 0;
  let late = 0;
  const lateKinds: Record<string, number> = {};
  const lateSamples: PacedCallResult['lateSamples'] = [];
  let settled = 0;
  const startedAt = performance.now();
  const tickMs = 100;
  for (let tick = 0; performance.now() - startedAt < options.durationMs; tick++) {
    const due = Math.floor(((tick + 1) * tickMs * options.ratePerSecond) / 1000);
    while (issued < due) {
      issued++;
      const identity = options.identities[Math.floor(Math.random() * options.identities.length)];
      const sentAt = performance.now();
      const sentAtEpoch = Date.now();
      const settle = (kind: string): void => {
        settled++;
        const tookMs = performance.now() - sentAt;
        if (tookMs <= options.timeoutMs + 2_000) return;
        late++;
        lateKinds[kind] = (lateKinds[kind] ?? 0) + 1;
        if (lateSamples.length < 500) lateSamples.push({ sentAt: sentAtEpoch, overMs: Math.round(tookMs - options.timeoutMs), kind });
      };
      send(identity).then(
        () => {
          ok++;
          recorder.record(performance.now() - sentAt);
          settle('ok');
        },
        (error: unknown) => {
          const kind = String((error as { code?: string })?.code ?? (error as Error)?.name ?? error);
          errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
          settle(kind);
        },
      );
    }
    const next = startedAt + (tick + 1) * tickMs;
    await sleep(Math.max(0, next - performance.now()));
  }
  const endBy = performance.now() + options.timeoutMs + 10_000;
  while (settled < issued && performance.now() < endBy) await sleep(100);
  return { issued, ok, errorKinds, late, lateKinds, lateSamples, unsettled: issued - settled, latencyMs: recorder.summary() };
}
