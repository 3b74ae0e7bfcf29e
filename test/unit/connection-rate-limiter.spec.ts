import { ConnectionRateLimiter } from '../../lib/gateway/connection-rate-limiter.js';

describe('ConnectionRateLimiter', () => {
  it('admits capacity attempts per address, then tells how long to wait; addresses are independent', () => {
    let now = 0;
    const limiter = new ConnectionRateLimiter({ perIp: { capacity: 2, refillPerSecond: 1 } }, () => now);
    expect([limiter.take('10.0.0.1'), limiter.take('10.0.0.1')]).toEqual([0, 0]);
    expect(limiter.take('10.0.0.1')).toBe(1000);
    expect(limiter.take('10.0.0.2')).toBe(0);
    now += 1000;
    expect(limiter.take('10.0.0.1')).toBe(0);
  });

  it('keeps at most maxTrackedAddresses buckets, forgetting the least recently seen', () => {
    let now = 0;
    const limiter = new ConnectionRateLimiter({ perIp: { capacity: 1, refillPerSecond: 0.001 }, maxTrackedAddresses: 100 }, () => now);
    expect(limiter.take('busy')).toBe(0);
    for (let i = 0; i < 10_000; i++) {
      limiter.take(`10.0.${i >> 8}.${i & 255}`);
      // Seen again and again, so it stays remembered (and limited).
      if (i % 50 === 0) expect(limiter.take('busy')).toBeGreaterThan(0);
      now += 1;
    }
    expect(limiter.trackedAddresses).toBe(100);
    expect(limiter.take('busy')).toBeGreaterThan(0);
  });
});
