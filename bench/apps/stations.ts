import { performance } from 'node:perf_hooks';
import { Fleet, type FleetOptions } from '../simulator/fleet.js';
import { announceReady, serveIpc, windowProfiler } from './ipc.js';

/**
 * The simulator's fleet as a child of the bench driver: started, flooded, counted and stopped
 * over IPC. Times (first all connected, first all booted) are taken here, on the stations' clock.
 */
let fleet: Fleet | null = null;
let startedAt = 0;
let allConnectedMs: number | null = null;
let allBootedMs: number | null = null;
let watcher: ReturnType<typeof setInterval> | null = null;

function requireFleet(): Fleet {
  if (!fleet) throw new Error('start the fleet first');
  return fleet;
}

serveIpc({
  ...windowProfiler(),
  start: async (message) => {
    const options: FleetOptions = {
      urls: message.urls,
      count: message.count,
      protocol: message.protocol ?? 'ocpp1.6',
      prefix: message.prefix ?? 'SIM',
      startIndex: message.startIndex ?? 1,
      heartbeatSeconds: message.heartbeatSeconds,
      txPerMinute: message.txPerMinute ?? 0,
      txDurationSeconds: message.txDurationSeconds ?? 60,
      meterValuesPerMinute: message.meterValuesPerMinute ?? 0,
      connectors: 1,
      connectRate: message.connectRate ?? 0,
      callTimeoutMs: message.callTimeoutMs ?? 30_000,
      backoff: { minMs: 1000, maxMs: 30_000, jitterMs: 1000 },
      failover: message.failover ?? false,
      deflate: message.deflate ?? false,
      localAddresses: message.localAddresses,
    };
    fleet = new Fleet(options);
    startedAt = performance.now();
    allConnectedMs = allBootedMs = null;
    const current = fleet;
    watcher = setInterval(() => {
      const elapsed = performance.now() - startedAt;
      if (allConnectedMs === null && current.stats.connected >= options.count) allConnectedMs = elapsed;
      if (allBootedMs === null && current.stats.booted >= options.count) allBootedMs = elapsed;
      if (allBootedMs !== null && watcher) clearInterval(watcher);
    }, 10);
    await fleet.start();
    return { identities: fleet.identities, startMs: performance.now() - startedAt };
  },
  stats: () => ({ ...requireFleet().stats.snapshot(), allConnectedMs, allBootedMs }),
  /** How the stations whose socket was lost at or after `since` (epoch ms) came back. */
  recovery: (message) => requireFleet().recovery(message.since),
  flood: (message) =>
    requireFleet().flood({ action: message.action, payload: message.payload, warmupMs: message.warmupMs, durationMs: message.durationMs }),
  stop: async () => {
    setTimeout(() => process.exit(0), 8000).unref();
    if (watcher) clearInterval(watcher);
    await fleet?.stop();
    setImmediate(() => process.exit(0));
    return true;
  },
});
announceReady({});
