import { performance } from 'node:perf_hooks';
import { LatencyRecorder, type LatencySummary } from '../simulator/stats.js';

export interface CallRunOptions {
  identities: string[];
  /** Measured calls. */
  total: number;
  /** Calls in flight; worker i always targets identities[i % n] (one call per station at a time). */
  concurrency: number;
  /** Unmeasured calls first (JIT, connection pools). */
  warmup: number;
}

export interface CallRunResult {
  calls: number;
  ok: number;
  errors: number;
  errorKinds: Record<string, number>;
  durationMs: number;
  callsPerSecond: number;
  latencyMs: LatencySummary;
}

/** `total` calls through `send`, `concurrency` at a time; latency from the caller's side. */
export async function runCalls(send: (identity: string) => Promise<unknown>, options: CallRunOptions): Promise<CallRunResult> {
  if (options.warmup > 0) await phase(send, options, options.warmup);
  return phase(send, options, options.total);
}

async function phase(send: (identity: string) => Promise<unknown>, options: CallRunOptions, count: number): Promise<CallRunResult> {
  const recorder = new LatencyRecorder();
  const errorKinds: Record<string, number> = {};
  let issued = 0;
  let errors = 0;
  const startedAt = performance.now();
  const worker = async (index: number): Promise<void> => {
    const identity = options.identities[index % options.identities.length];
    while (issued < count) {
      issued++;
      const sentAt = performance.now();
      try {
        await send(identity);
        recorder.record(performance.now() - sentAt);
      } catch (error) {
        errors++;
        const kind = String((error as { code?: string; name?: string })?.code ?? (error as Error)?.name ?? error);
        errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, (_, i) => worker(i)));
  const durationMs = performance.now() - startedAt;
  return {
    calls: count,
    ok: recorder.count,
    errors,
    errorKinds,
    durationMs,
    callsPerSecond: (recorder.count / durationMs) * 1000,
    latencyMs: recorder.summary(),
  };
}
