import { Cluster, Redis } from 'ioredis';
import { InvalidOptionsError } from '../protocol/errors.js';
import { createDriver, RedisDriver, type RedisClient } from './redis-driver.js';

export const MAX_POOL_SIZE = 64;

/**
 * Makes pool member `index` (1..poolSize-1; member 0 is the adapter's own driver). A returned
 * driver is closed with the pool (it closes only what it built); a returned bare client is
 * treated as user-built and never closed.
 */
export type DriverFactory = (index: number) => RedisDriver | RedisClient;

export interface ConnectionPoolOptions {
  poolSize?: number;
  driverFactory?: DriverFactory;
}

/** Validates `poolSize` / `driverFactory` (throws `InvalidOptionsError` naming the bad one). */
export function validatePoolOptions(options: ConnectionPoolOptions): number {
  const poolSize = options.poolSize ?? 1;
  if (!Number.isInteger(poolSize) || poolSize < 1 || poolSize > MAX_POOL_SIZE) {
    throw new InvalidOptionsError('poolSize', `must be an integer from 1 to ${MAX_POOL_SIZE}`);
  }
  if (options.driverFactory !== undefined && typeof options.driverFactory !== 'function') {
    throw new InvalidOptionsError('driverFactory', 'must be a function');
  }
  if (poolSize > 1 && options.driverFactory === undefined) {
    throw new InvalidOptionsError('driverFactory', 'is required when poolSize > 1');
  }
  return poolSize;
}

/**
 * Writer connections. A destination always maps to the same member (hash of its key), so
 * messages to one inbox leave in the order they were published even with `poolSize > 1`,
 * while different destinations spread over the members (no head-of-line blocking between them).
 */
export class RedisConnectionPool {
  readonly drivers: readonly RedisDriver[];

  constructor(primary: RedisDriver, options: ConnectionPoolOptions = {}) {
    const poolSize = validatePoolOptions(options);
    const drivers = [primary];
    for (let index = 1; index < poolSize; index++) {
      const made = options.driverFactory!(index);
      // The seed's `driverFactory: () => clusterDriver` hands out one driver: one member.
      if (made instanceof RedisDriver && drivers.includes(made)) continue;
      if (made instanceof RedisDriver) drivers.push(made);
      else if (made instanceof Redis || made instanceof Cluster) drivers.push(createDriver({ pubClient: made }));
      else throw new InvalidOptionsError('driverFactory', 'must return a RedisDriver (createDriver) or an ioredis client');
    }
    this.drivers = drivers;
  }

  get size(): number {
    return this.drivers.length;
  }

  get primary(): RedisDriver {
    return this.drivers[0];
  }

  /** Index of the member that carries everything sent to `destinationKey`. */
  indexOf(destinationKey: string): number {
    return this.drivers.length === 1 ? 0 : fnv1a(destinationKey) % this.drivers.length;
  }

  /** The writer connection for `destinationKey`. */
  pick(destinationKey: string): RedisClient {
    return this.drivers[this.indexOf(destinationKey)].writer;
  }

  /** True while every member's writer is ready. */
  isHealthy(): boolean {
    return this.healthIssue() === null;
  }

  /** The first member whose writer is not ready, and why; or null. */
  healthIssue(): string | null {
    for (const [index, driver] of this.drivers.entries()) {
      const issue = driver.healthIssue(['writer']);
      if (issue !== null) return index === 0 ? issue : `pool member ${index}: ${issue}`;
    }
    return null;
  }

  get errors(): number {
    return this.drivers.reduce((sum, driver) => sum + driver.errors, 0);
  }

  get reconnects(): number {
    return this.drivers.reduce((sum, driver) => sum + driver.reconnects, 0);
  }

  /** Closes the members made by the factory (the primary belongs to whoever made it). */
  async close(): Promise<void> {
    await Promise.all(this.drivers.slice(1).map((driver) => driver.close()));
  }

  destroy(): void {
    for (const driver of this.drivers.slice(1)) driver.destroy();
  }
}

/** 32-bit FNV-1a: cheap, stable across processes, well spread for short keys. */
export function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}
