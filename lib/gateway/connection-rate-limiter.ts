import { InvalidOptionsError } from '../protocol/errors.js';
import { TokenBucket } from '../protocol/token-bucket.js';

export interface ConnectionRateLimitOptions {
  /** Upgrade attempts per remote address: a token bucket of `capacity`, refilled at `refillPerSecond`. */
  perIp: { capacity: number; refillPerSecond: number };
  /** Addresses remembered at once (default 10,000); beyond it the least recently seen is forgotten. */
  maxTrackedAddresses?: number;
}

export const DEFAULT_MAX_TRACKED_ADDRESSES = 10_000;

/** Checks the options (InvalidOptionsError naming the bad one); returns the address bound. */
export function validateConnectionRateLimit(options: ConnectionRateLimitOptions): number {
  if (options === null || typeof options !== 'object' || options.perIp === null || typeof options.perIp !== 'object') {
    throw new InvalidOptionsError('connectionRateLimit.perIp', 'must be { capacity, refillPerSecond }');
  }
  const { capacity, refillPerSecond } = options.perIp;
  if (!Number.isInteger(capacity) || capacity < 1) {
    throw new InvalidOptionsError('connectionRateLimit.perIp.capacity', `must be an integer >= 1, got ${String(capacity)}`);
  }
  if (typeof refillPerSecond !== 'number' || !Number.isFinite(refillPerSecond) || refillPerSecond <= 0) {
    throw new InvalidOptionsError('connectionRateLimit.perIp.refillPerSecond', `must be a number > 0, got ${String(refillPerSecond)}`);
  }
  const maxTracked = options.maxTrackedAddresses ?? DEFAULT_MAX_TRACKED_ADDRESSES;
  if (!Number.isInteger(maxTracked) || maxTracked < 1) {
    throw new InvalidOptionsError('connectionRateLimit.maxTrackedAddresses', `must be an integer >= 1, got ${String(maxTracked)}`);
  }
  return maxTracked;
}

/**
 * Per-address token buckets for upgrade attempts. Memory is bounded: the map keeps at most
 * `maxTrackedAddresses` buckets in least-recently-used order and forgets the oldest, which is the
 * one most likely to be full again anyway (forgetting a full bucket changes nothing).
 */
export class ConnectionRateLimiter {
  private readonly buckets = new Map<string, TokenBucket>();
  private readonly maxTracked: number;

  constructor(
    private readonly options: ConnectionRateLimitOptions,
    private readonly now: () => number = Date.now,
  ) {
    this.maxTracked = validateConnectionRateLimit(options);
  }

  /** Addresses currently remembered. */
  get trackedAddresses(): number {
    return this.buckets.size;
  }

  /** Takes a token for `address`: 0 when admitted, else the milliseconds until the next token. */
  take(address: string): number {
    let bucket = this.buckets.get(address);
    if (bucket === undefined) {
      if (this.buckets.size >= this.maxTracked) this.buckets.delete(this.buckets.keys().next().value as string);
      bucket = new TokenBucket(this.options.perIp.capacity, this.options.perIp.refillPerSecond, this.now);
    } else {
      this.buckets.delete(address); // re-inserted below: the map's order is recency
    }
    this.buckets.set(address, bucket);
    return bucket.tryTake() ? 0 : bucket.msUntilNextToken();
  }
}
