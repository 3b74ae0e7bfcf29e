import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import type { ClusterLogger } from './logger.js';

/** Shared slots every keeper has; a transport's keeper may add its own after them. */
export const KEPT_UNTIL_SLOT = 0;
export const MAIN_PULSE_SLOT = 1;
export const FIRST_FREE_SLOT = 2;
const PULSE_EVERY_MS = 100;

export interface LeaseKeeperThreadOptions {
  /** The worker's script; it runs `runLeaseKeeper` (lease-keeper-loop.mjs) with the transport's renewal. */
  script: URL;
  /**
   * Plain data for the worker (structured-cloned): what it renews and how it connects. Built here,
   * so that settings which cannot be copied leave the node without a keeper (with a warning).
   */
  data: () => Record<string, unknown>;
  intervalMs: number;
  ttlMs: number;
  marginMs: number;
  /** How long the main thread may go without turning before the keeper lets the lease lapse. */
  toleranceMs: number;
  /** Slots beyond the shared ones (transport-owned, from FIRST_FREE_SLOT on). */
  extraSlots?: number;
  logger: ClusterLogger;
}

/**
 * The main thread's side of a lease keeper: a worker thread that renews the node's lease while
 * the event loop is busy (a storm of reconnects, a long GC), so survivors do not take the node
 * over and close all its sockets on top of the overload. A main thread that has not turned for
 * longer than `toleranceMs` is taken for hung and the lease lapses as before; a frozen or killed
 * process freezes or kills the thread with it.
 *
 * The two threads share only numbers (a SharedArrayBuffer): the main thread's pulse, and the
 * keeper's proof: after the store accepted a renewal under the node's token, the lease is the
 * node's own until the send time + TTL (minus the margin), in the main thread's
 * performance.now() terms ({@link keptUntil}). Fencing reads that bound beside its own.
 */
export class LeaseKeeperThread {
  private readonly slots: Float64Array;
  private readonly worker: Worker;
  private readonly pulse: NodeJS.Timeout;
  private kept: string | null = null;
  private closed = false;

  private constructor(options: LeaseKeeperThreadOptions) {
    const shared = new SharedArrayBuffer((FIRST_FREE_SLOT + (options.extraSlots ?? 0)) * Float64Array.BYTES_PER_ELEMENT);
    this.slots = new Float64Array(shared);
    this.slots[MAIN_PULSE_SLOT] = performance.now();
    const { intervalMs, ttlMs, marginMs, toleranceMs } = options;
    this.worker = new Worker(options.script, {
      workerData: {
        ...options.data(),
        ...{ intervalMs, ttlMs, marginMs, toleranceMs, shared, keptUntilSlot: KEPT_UNTIL_SLOT, mainPulseSlot: MAIN_PULSE_SLOT },
        mainClockOffsetMs: Number(process.hrtime.bigint()) / 1e6 - performance.now(),
      },
    });
    this.worker.unref();
    this.worker.on('error', (error) => options.logger.warn(`lease keeper thread failed (the event loop alone renews the lease now): ${error.message}`));
    this.pulse = setInterval(() => {
      this.slots[MAIN_PULSE_SLOT] = performance.now();
    }, PULSE_EVERY_MS);
    this.pulse.unref();
  }

  /** Starts the keeper's thread; null (with a warning) when its settings cannot be copied into it. */
  static start(options: LeaseKeeperThreadOptions): LeaseKeeperThread | null {
    try {
      return new LeaseKeeperThread(options);
    } catch (error) {
      options.logger.warn(`no lease keeper thread (the event loop alone renews the lease): ${(error as Error).message}`);
      return null;
    }
  }

  /** Renew under `token` from now on; null: renew nothing (the node stopped, or lost the id). */
  keep(token: string | null): void {
    if (this.closed || token === this.kept) return;
    this.kept = token;
    this.worker.postMessage({ type: 'keep', token });
  }

  /** performance.now() until which the keeper proved the lease the node's own (0 before its first renewal). */
  get keptUntil(): number {
    return this.slots[KEPT_UNTIL_SLOT];
  }

  /** A transport-owned slot (FIRST_FREE_SLOT on). */
  slot(index: number): number {
    return this.slots[index];
  }

  setSlot(index: number, value: number): void {
    this.slots[index] = value;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.pulse);
    this.worker.postMessage({ type: 'close' });
  }
}

/**
 * Called when the event loop's own proof of the lease ran out and the keeper's did not, its lease
 * timer firing `lateMs` behind its time. More than a heartbeat interval late means the loop
 * stalled and the keeper is what kept the node from being taken over: warns and returns true. (On
 * time, the keeper merely renewed beside the loop.)
 */
export function keptThroughStall(lateMs: number, intervalMs: number, nodeId: string, logger: ClusterLogger): boolean {
  if (lateMs <= intervalMs) return false;
  logger.warn(`node ${nodeId}: this event loop ran ${Math.round(lateMs)} ms behind (busy); the lease keeper thread kept the lease meanwhile`);
  return true;
}

/** Settings as plain data for a thread: functions (a retry strategy, an authenticator) are left out. */
export function plainData(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return typeof value === 'function' ? undefined : value;
  if (ArrayBuffer.isView(value)) return value;
  if (Array.isArray(value)) return value.map(plainData);
  const copy: Record<string, unknown> = {};
  for (const [key, entry] of Object.entries(value)) {
    const data = plainData(entry);
    if (data !== undefined) copy[key] = data;
  }
  return copy;
}
