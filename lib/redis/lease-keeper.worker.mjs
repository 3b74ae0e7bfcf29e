// The lease keeper's thread (see lease-keeper.ts). Plain JavaScript so that Node runs it as it
// is, from the sources (tests) and from dist alike. It renews the node's liveness key while the
// main thread names a token and has turned its event loop within the tolerance, and publishes
// until when the key is certainly the node's own, in the main thread's performance.now() terms.
/* global process, setTimeout, clearTimeout */
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { Cluster, Redis } from 'ioredis';

const { connection, script, keys, args, intervalMs, ttlMs, marginMs, toleranceMs, mainClockOffsetMs, shared } = workerData;
const slots = new Float64Array(shared);
const KEPT_UNTIL = 0;
const MAIN_PULSE = 1;

// hrtime is one monotonic clock for every thread; performance.now() is per thread.
const ownClockOffsetMs = Number(process.hrtime.bigint()) / 1e6 - performance.now();
const mainNow = () => performance.now() + ownClockOffsetMs - mainClockOffsetMs;

const client =
  connection.kind === 'cluster' ? new Cluster(connection.nodes, connection.options) : new Redis({ ...connection.options, lazyConnect: false });
client.on('error', () => undefined);

let token = null;
let timer = null;
let closed = false;
let beating = false;

parentPort.on('message', (message) => {
  if (message.type === 'keep') {
    token = message.token;
    // A new token (a start, a rejoin): renew at once rather than an interval later.
    if (token !== null && !beating) {
      if (timer) clearTimeout(timer);
      void beat();
    }
  } else if (message.type === 'close') {
    token = null;
    closed = true;
    if (timer) clearTimeout(timer);
    client.disconnect();
    parentPort.close();
  }
});

async function beat() {
  timer = null;
  beating = true;
  const asked = token;
  // A main thread that has not turned for longer than the tolerance is hung, not busy: let the key lapse.
  if (asked !== null && mainNow() - slots[MAIN_PULSE] <= toleranceMs) {
    const sentAt = mainNow();
    try {
      const refreshed = await withinTtl(client.eval(script, keys.length, ...keys, asked, ...args));
      // 1: the key held this token when Redis ran the script, so it lives until sentAt + TTL at least.
      if (Number(refreshed) === 1) slots[KEPT_UNTIL] = Math.max(slots[KEPT_UNTIL], sentAt + ttlMs - marginMs);
    } catch {
      // Unreachable or slow: the main thread's own heartbeat tells the node; the next beat tries again.
    }
  }
  beating = false;
  if (!closed && timer === null) timer = setTimeout(beat, intervalMs);
}

function withinTtl(step) {
  let bound;
  const expired = new Promise((_, reject) => {
    bound = setTimeout(() => reject(new Error('no answer within the TTL')), ttlMs);
  });
  return Promise.race([step, expired]).finally(() => clearTimeout(bound));
}

timer = setTimeout(beat, intervalMs);
