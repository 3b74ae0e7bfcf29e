// The loop of a lease keeper's thread (see lease-keeper-thread.ts), shared by the transports'
// workers. Plain JavaScript so that Node runs it as it is, from the sources (tests) and from dist
// alike. It renews while the main thread names a token and has turned its event loop within the
// tolerance, and publishes until when the lease is certainly the node's own, in the main
// thread's performance.now() terms.
/* global process, setTimeout, clearTimeout */
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';

const { intervalMs, ttlMs, marginMs, toleranceMs, mainClockOffsetMs, shared, keptUntilSlot, mainPulseSlot } = workerData;

const CLOSE_WITHIN_MS = 1000;

/** The numbers both threads share (see LeaseKeeperThread). */
export const slots = new Float64Array(shared);

// hrtime is one monotonic clock for every thread; performance.now() is per thread.
const ownClockOffsetMs = Number(process.hrtime.bigint()) / 1e6 - performance.now();

/** Now, in the main thread's performance.now() terms. */
export const mainNow = () => performance.now() + ownClockOffsetMs - mainClockOffsetMs;

/**
 * Runs the keeper. `renew(token)` renews the lease under `token` and resolves true only when the
 * store accepted it with the lease still the token's (false: it did not renew, or found the lease
 * not ours); it must never take a lapsed lease back. `tickMs`: how often to consider renewing
 * (default: the heartbeat interval). `close()` ends the thread's connection (may return a promise).
 */
export function runLeaseKeeper({ renew, close, tickMs = intervalMs }) {
  let token = null;
  let timer = null;
  let closed = false;
  let beating = false;

  parentPort.on('message', (message) => {
    if (message.type === 'keep') {
      token = message.token;
      // A new token (a start, a rejoin): renew at once rather than a tick later.
      if (token !== null && !beating) {
        if (timer) clearTimeout(timer);
        void beat();
      }
    } else if (message.type === 'close') {
      token = null;
      closed = true;
      if (timer) clearTimeout(timer);
      // Ends the thread once its connection closed, or a moment later: a connection still being
      // made (its server unreachable) would keep the thread alive with its reconnect timers.
      const bound = setTimeout(() => process.exit(0), CLOSE_WITHIN_MS);
      Promise.resolve()
        .then(close)
        .catch(() => undefined)
        .finally(() => {
          clearTimeout(bound);
          process.exit(0);
        });
    }
  });

  async function beat() {
    timer = null;
    beating = true;
    const asked = token;
    // A main thread that has not turned for longer than the tolerance is hung, not busy: let the lease lapse.
    if (asked !== null && mainNow() - slots[mainPulseSlot] <= toleranceMs) {
      const sentAt = mainNow();
      try {
        // Accepted under this token: the lease lives until sentAt + TTL at least.
        if (await withinTtl(renew(asked))) slots[keptUntilSlot] = Math.max(slots[keptUntilSlot], sentAt + ttlMs - marginMs);
      } catch {
        // Unreachable or slow: the main thread's own heartbeat tells the node; the next beat tries again.
      }
    }
    beating = false;
    if (!closed && timer === null) timer = setTimeout(beat, tickMs);
  }

  timer = setTimeout(beat, tickMs);
}

function withinTtl(step) {
  let bound;
  const expired = new Promise((_, reject) => {
    bound = setTimeout(() => reject(new Error('no answer within the TTL')), ttlMs);
  });
  return Promise.race([step, expired]).finally(() => clearTimeout(bound));
}
