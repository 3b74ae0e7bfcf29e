import { InvalidOptionsError } from './errors.js';

// Refill arithmetic is floating point (0.7 + 0.3 < 1); a token this close to whole counts.
const EPSILON = 1e-9;

/**
 * A token bucket: holds up to `capacity` tokens, starts full, and gains `refillPerSecond`
 * tokens per second. Time comes from `now` (injectable for tests); refill is computed lazily,
 * so an idle bucket costs nothing.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    readonly capacity: number,
    readonly refillPerSecond: number,
    private readonly now: () => number = Date.now,
  ) {
    if (!Number.isFinite(capacity) || capacity < 1) {
      throw new InvalidOptionsError('capacity', 'must be a finite number >= 1');
    }
    if (!Number.isFinite(refillPerSecond) || refillPerSecond <= 0) {
      throw new InvalidOptionsError('refillPerSecond', 'must be a finite number > 0');
    }
    this.tokens = capacity;
    this.last = now();
  }

  /** Tokens available now (fractional while refilling). */
  get available(): number {
    this.refill();
    return this.tokens;
  }

  /** Takes one token if there is one. */
  tryTake(): boolean {
    this.refill();
    if (this.tokens < 1 - EPSILON) return false;
    this.tokens -= 1;
    return true;
  }

  /** 0 when a token is available, else the whole milliseconds (at least 1) until there is one. */
  msUntilNextToken(): number {
    this.refill();
    if (this.tokens >= 1 - EPSILON) return 0;
    return Math.max(1, Math.ceil(((1 - this.tokens) * 1000) / this.refillPerSecond));
  }

  private refill(): void {
    const t = this.now();
    const elapsed = t - this.last;
    // A clock that went backwards only moves the reference point; it never adds tokens.
    if (elapsed > 0) this.tokens = Math.min(this.capacity, this.tokens + (elapsed * this.refillPerSecond) / 1000);
    this.last = t;
  }
}
