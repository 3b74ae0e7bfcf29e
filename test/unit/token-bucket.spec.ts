import { InvalidOptionsError } from '../../lib/protocol/errors.js';
import { TokenBucket } from '../../lib/protocol/token-bucket.js';

function clock(start = 1_000_000) {
  const c = { t: start, now: () => c.t };
  return c;
}

function drain(bucket: TokenBucket): number {
  let taken = 0;
  while (bucket.tryTake()) taken++;
  return taken;
}

describe('TokenBucket', () => {
  it('starts full and gives exactly capacity tokens at once', () => {
    const c = clock();
    const bucket = new TokenBucket(5, 1, c.now);
    expect(drain(bucket)).toBe(5);
    expect(bucket.tryTake()).toBe(false);
  });

  it('refills at the given rate', () => {
    const c = clock();
    const bucket = new TokenBucket(10, 4, c.now);
    drain(bucket);
    c.t += 500;
    expect(drain(bucket)).toBe(2);
    c.t += 250;
    expect(drain(bucket)).toBe(1);
  });

  it('never holds more than capacity', () => {
    const c = clock();
    const bucket = new TokenBucket(3, 100, c.now);
    drain(bucket);
    c.t += 60_000;
    expect(drain(bucket)).toBe(3);
  });

  it('msUntilNextToken is 0 while a token is available', () => {
    const c = clock();
    const bucket = new TokenBucket(1, 1, c.now);
    expect(bucket.msUntilNextToken()).toBe(0);
  });

  it('msUntilNextToken tells when the next token is there, and not before', () => {
    const c = clock();
    const bucket = new TokenBucket(2, 3, c.now);
    drain(bucket);
    const wait = bucket.msUntilNextToken();
    expect(wait).toBeGreaterThan(0);
    c.t += wait - 1;
    expect(bucket.tryTake()).toBe(false);
    c.t += 1;
    expect(bucket.tryTake()).toBe(true);
  });

  it('counts partial refills (0.7 + 0.3 tokens make one)', () => {
    const c = clock();
    const bucket = new TokenBucket(1, 10, c.now);
    drain(bucket);
    c.t += 70;
    expect(bucket.tryTake()).toBe(false);
    c.t += bucket.msUntilNextToken();
    expect(bucket.tryTake()).toBe(true);
  });

  it('adds no tokens when the clock goes backwards', () => {
    const c = clock();
    const bucket = new TokenBucket(2, 1, c.now);
    drain(bucket);
    c.t -= 10_000;
    expect(bucket.tryTake()).toBe(false);
    c.t += 1000;
    expect(bucket.tryTake()).toBe(true);
  });

  it('rejects bad options, naming them', () => {
    expect(() => new TokenBucket(0, 1)).toThrow(InvalidOptionsError);
    expect(() => new TokenBucket(Number.NaN, 1)).toThrow(/capacity/);
    expect(() => new TokenBucket(1, 0)).toThrow(/refillPerSecond/);
    expect(() => new TokenBucket(1, Infinity)).toThrow(/refillPerSecond/);
  });
});
