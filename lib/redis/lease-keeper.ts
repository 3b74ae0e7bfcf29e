import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import type { Cluster, Redis } from 'ioredis';
import type { ClusterLogger } from '../cluster/logger.js';
import type { RedisClient } from './redis-driver.js';

const KEPT_UNTIL = 0;
const MAIN_PULSE = 1;
const PULSE_EVERY_MS = 100;

/** How the keeper's thread connects: a copy of the writer's own settings (functions cannot cross threads). */
export type KeeperConnection =
  | { kind: 'standalone'; options: Record<string, unknown> }
  | { kind: 'cluster'; nodes: unknown[]; options: Record<string, unknown> };

export interface LeaseKeeperOptions {
  /** The connection whose settings the keeper copies (the node's writer for its liveness key). */
  client: RedisClient;
  /** The heartbeat script (LIVENESS_REFRESH) and its keys; the token goes first in ARGV, then `args`. */
  script: string;
  keys: readonly string[];
  args: readonly (string | number)[];
  intervalMs: number;
  ttlMs: number;
  marginMs: number;
  /** How long the main thread may go without turning before the keeper lets the key lapse. */
  toleranceMs: number;
  logger: ClusterLogger;
}

/**
 * Renews the node's liveness key from a worker thread while the main thread is busy. A node
 * whose event loop stalls (a storm of reconnects, a long GC) keeps its lease, so survivors do not
 * take it over and close all its sockets on top of the overload; a main thread that has not
 * turned for longer than `toleranceMs` is taken for hung and its key lapses as before. A frozen
 * or killed process freezes or kills this thread with it.
 *
 * The keeper writes only facts: after Redis ran the script with the key still holding the
 * token, the key is the node's own until the send time + TTL (minus the margin), in the main
 * thread's performance.now() terms ({@link keptUntil}). Fencing reads that bound beside its own.
 */
export class LeaseKeeper {
  private readonly slots: Float64Array;
  private readonly worker: Worker;
  private readonly pulse: NodeJS.Timeout;
  private kept: string | null = null;
  private closed = false;

  private constructor(options: LeaseKeeperOptions) {
    const shared = new SharedArrayBuffer(2 * Float64Array.BYTES_PER_ELEMENT);
    this.slots = new Float64Array(shared);
    this.slots[MAIN_PULSE] = performance.now();
    const { script, keys, args, intervalMs, ttlMs, marginMs, toleranceMs } = options;
    this.worker = new Worker(new URL('./lease-keeper.worker.mjs', import.meta.url), {
      workerData: {
        ...{ connection: keeperConnection(options.client), script, keys, args, intervalMs, ttlMs, marginMs, toleranceMs, shared },
        mainClockOffsetMs: Number(process.hrtime.bigint()) / 1e6 - performance.now(),
      },
    });
    this.worker.unref();
    this.worker.on('error', (error) => options.logger.warn(`lease keeper thread failed (the event loop alone renews the lease now): ${error.message}`));
    this.pulse = setInterval(() => {
      this.slots[MAIN_PULSE] = performance.now();
    }, PULSE_EVERY_MS);
    this.pulse.unref();
  }

  /** Starts the keeper's thread; null (with a warning) when the connection cannot be copied into it. */
  static start(options: LeaseKeeperOptions): LeaseKeeper | null {
    try {
      return new LeaseKeeper(options);
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

  /** performance.now() until which the keeper proved the key the node's own (0 before its first renewal). */
  get keptUntil(): number {
    return this.slots[KEPT_UNTIL];
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.pulse);
    this.worker.postMessage({ type: 'close' });
  }
}

/** The writer's connection settings as plain data (functions, such as a retry strategy, are left to ioredis's defaults). */
export function keeperConnection(client: RedisClient): KeeperConnection {
  // ioredis's own flag, not instanceof: the user's clients may come from another copy of ioredis.
  if ((client as { isCluster?: boolean }).isCluster === true) {
    const nodes = plainData((client as unknown as { startupNodes: unknown[] }).startupNodes) as unknown[];
    const options = plainData((client as Cluster).options) as Record<string, unknown>;
    const redisOptions = (options.redisOptions ?? {}) as Record<string, unknown>;
    return { kind: 'cluster', nodes, options: { ...options, lazyConnect: false, redisOptions: keeperNamed(redisOptions) } };
  }
  return { kind: 'standalone', options: keeperNamed(plainData((client as Redis).options) as Record<string, unknown>) };
}

/** An operator reading CLIENT LIST tells the keeper's connection from the node's others. */
function keeperNamed(options: Record<string, unknown>): Record<string, unknown> {
  return typeof options.connectionName === 'string' ? { ...options, connectionName: `${options.connectionName}:lease-keeper` } : options;
}

function plainData(value: unknown): unknown {
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
