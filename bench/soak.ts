import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PacedCallResult } from './apps/paced-calls.js';
import { killAllChildren, type BenchApp } from './harness/processes.js';
import { RedisServer } from './harness/redis.js';
import { DATA_TRANSFER, ROOT, endpoint, startImpl, startStations, stopAll, waitUntil, type BenchContext } from './harness/scenarios.js';
import { fleetIdentities } from './simulator/fleet.js';

/**
 * `npm run bench -- --soak`: a fleet on our nodes over standalone Redis, with realistic traffic
 * (boot; Heartbeat at the booted interval; StatusNotification; transactions with MeterValues
 * every 60 s on about a third of the stations; a cross-node command per station every few
 * minutes from the nodes that stay), then `kill -9` of the last node: time until its stations
 * are in presence on the others (the simulator fails over to the next url with its backoff) and
 * answer calls, and every command's fate. Environment: SOAK_STATIONS (50000), SOAK_NODES (4),
 * SOAK_MINUTES (10), SOAK_COMMAND_EVERY_S (180), SOAK_AFTER_KILL_S (60).
 */

const STATIONS_PER_PROCESS = 12_500;

const numberFromEnv = (name: string, fallback: number): number => {
  const value = process.env[name] === undefined ? fallback : Number(process.env[name]);
  if (!(value > 0)) throw new Error(`${name} must be a positive number`);
  return value;
};

interface CpuSample {
  user: number;
  system: number;
  connections: number;
}

async function main(): Promise<void> {
  const stations = numberFromEnv('SOAK_STATIONS', 50_000);
  const nodeCount = numberFromEnv('SOAK_NODES', 4);
  const soakMs = numberFromEnv('SOAK_MINUTES', 10) * 60_000;
  const commandEveryS = numberFromEnv('SOAK_COMMAND_EVERY_S', 180);
  const afterKillMs = numberFromEnv('SOAK_AFTER_KILL_S', 60) * 1000;
  const timeoutMs = 30_000;
  // Chunks hold a multiple of the node count, so station g sits on node g % nodeCount in every chunk.
  const perProcess = STATIONS_PER_PROCESS - (STATIONS_PER_PROCESS % nodeCount);
  const startedAt = performance.now();
  const ctx: BenchContext = {
    scale: 1,
    logDir: mkdtempSync(join(tmpdir(), 'ocpp-soak-')),
    protocol: 'ocpp1.6',
    backlog: Number(process.env.BENCH_BACKLOG ?? 4096),
    log: (message) => process.stderr.write(`[${Math.round((performance.now() - startedAt) / 1000)} s] ${message}\n`),
  };
  ctx.log(`soak: ${stations} stations over ${nodeCount} nodes, ${soakMs / 60_000} min, a command per station every ${commandEveryS} s; logs in ${ctx.logDir}`);
  const redis = await RedisServer.start(ctx.logDir);
  const nodes: BenchApp[] = [];
  const fleets: BenchApp[] = [];
  try {
    for (let i = 0; i < nodeCount; i++) {
      nodes.push(startImpl(ctx, 'ours', `soak-${i}`, { BENCH_REDIS_URL: redis.url, BENCH_NODE_ID: `soak-${i}`, BENCH_STRICT: '1' }));
    }
    const ready = await Promise.all(nodes.map((node) => node.ready));
    const urls = ready.map(endpoint);
    const identities = fleetIdentities('SIM', 1, stations);
    const chunks = Math.ceil(stations / perProcess);
    for (let p = 0; p < chunks; p++) fleets.push(startStations(ctx, `soak-${p}`));
    await Promise.all(fleets.map((fleet) => fleet.ready));
    const bootStart = performance.now();
    await Promise.all(
      fleets.map((fleet, p) =>
        fleet.request(
          'start',
          {
            urls,
            count: Math.min(perProcess, stations - p * perProcess),
            startIndex: 1 + p * perProcess,
            protocol: ctx.protocol,
            connectRate: 1_000 / chunks,
            failover: true,
            // A third in a transaction at any time: one start per 30 min, 10 min long; MeterValues every 60 s.
            txPerMinute: 1 / 30,
            txDurationSeconds: 600,
            meterValuesPerMinute: 1,
          },
          600_000,
        ),
      ),
    );
    const fleetStats = async (): Promise<Array<Record<string, any>>> => Promise.all(fleets.map((fleet) => fleet.request('stats')));
    await waitUntil('every station booted', async () => (await fleetStats()).reduce((sum, s) => sum + s.booted, 0) >= stations, 900_000, 1_000);
    ctx.log(`  all ${stations} booted in ${((performance.now() - bootStart) / 1000).toFixed(1)} s; soaking`);

    const cpuOf = (): Promise<CpuSample[]> => Promise.all(nodes.map((node) => node.request<CpuSample>('cpu')));
    const cpuBefore = await cpuOf();
    const soakStart = performance.now();
    // Cross-node commands from the nodes that stay (the killed node's callers die with it).
    const callers = nodes.slice(0, -1);
    const rate = stations / commandEveryS / callers.length;
    const callsDone = Promise.all(
      callers.map((node) =>
        node.request<PacedCallResult>(
          'pacedCalls',
          { identities, ratePerSecond: rate, durationMs: soakMs + afterKillMs, timeoutMs, action: 'DataTransfer', payload: DATA_TRANSFER },
          soakMs + afterKillMs + timeoutMs + 120_000,
        ),
      ),
    );
    for (let minute = 1; minute * 60_000 <= soakMs; minute++) {
      await sleep(Math.max(0, soakStart + minute * 60_000 - performance.now()));
      const s = await fleetStats();
      ctx.log(`  minute ${minute}: connected ${s.reduce((a, x) => a + x.connected, 0)}, calls out ${s.reduce((a, x) => a + x.callsOut, 0)}, errors ${s.reduce((a, x) => a + x.errors, 0)}`);
    }
    const cpuAfter = await cpuOf();
    const soakWallUs = (performance.now() - soakStart) * 1000;
    const cpuPer1000 = cpuAfter.map((after, i) => {
      const usedUs = after.user + after.system - cpuBefore[i].user - cpuBefore[i].system;
      return { node: `soak-${i}`, connections: after.connections, cpuPercent: (usedUs / soakWallUs) * 100, cpuPercentPer1000: ((usedUs / soakWallUs) * 100) / (after.connections / 1000) };
    });
    const inboundBeforeKill = (await fleetStats()).map((s) => s.callLatencyMs);

    // kill -9 the last node.
    const victim = nodes.length - 1;
    const victimId = `soak-${victim}`;
    const orphans = identities.filter((_, g) => g % nodeCount === victim);
    ctx.log(`  kill -9 ${victimId} (${orphans.length} stations)`);
    const killedAt = performance.now();
    nodes[victim].kill();
    const survivor = nodes[0];
    let reconnectMs: number | null = null;
    let reachableMs: number | null = null;
    try {
      await waitUntil(
        `the ${orphans.length} stations of ${victimId} in presence elsewhere`,
        async () => (await survivor.request<number>('presenceElsewhere', { identities: orphans, notOn: victimId }, 30_000)) === orphans.length,
        afterKillMs + 120_000,
        250,
      );
      reconnectMs = performance.now() - killedAt;
      const sample = Array.from({ length: Math.min(200, orphans.length) }, (_, i) => orphans[Math.floor((i * orphans.length) / Math.min(200, orphans.length))]);
      await Promise.all(sample.map((identity) => survivor.request('call', { identity, action: 'DataTransfer', payload: DATA_TRANSFER, timeoutMs }, timeoutMs + 10_000)));
      reachableMs = performance.now() - killedAt;
    } catch (error) {
      ctx.log(`  after the kill: ${String((error as Error).message ?? error)}`);
    }
    ctx.log(`  reconnected elsewhere after ${reconnectMs === null ? 'never' : (reconnectMs / 1000).toFixed(1)} s, 200 of them answered after ${reachableMs === null ? 'never' : (reachableMs / 1000).toFixed(1)} s`);
    const commands = await callsDone;
    const inboundAfter = (await fleetStats()).map((s) => ({ callLatencyMs: s.callLatencyMs, reconnects: s.reconnects, topErrors: s.topErrors }));
    const errorKinds: Record<string, number> = {};
    for (const result of commands) for (const [kind, n] of Object.entries(result.errorKinds)) errorKinds[kind] = (errorKinds[kind] ?? 0) + n;
    const summary = {
      machine: `${cpus().length} cores, ${cpus()[0]?.model ?? 'unknown'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
      stations,
      nodes: nodeCount,
      redis: 'standalone',
      soakMinutes: soakMs / 60_000,
      cpuPer1000,
      inboundP99MsBeforeKill: Math.max(...inboundBeforeKill.map((l) => l.p99)),
      crossNode: {
        issued: commands.reduce((a, r) => a + r.issued, 0),
        ok: commands.reduce((a, r) => a + r.ok, 0),
        late: commands.reduce((a, r) => a + r.late, 0),
        unsettled: commands.reduce((a, r) => a + r.unsettled, 0),
        p99Ms: Math.max(...commands.map((r) => r.latencyMs.p99)),
        errorKinds,
      },
      kill: { node: victimId, stations: orphans.length, reconnectMs, reachableMs },
      stationsAfter: inboundAfter,
    };
    const resultsDir = join(ROOT, 'bench/results');
    mkdirSync(resultsDir, { recursive: true });
    const file = join(resultsDir, `${new Date().toISOString().replace(/[:.]/g, '-')}-soak.json`);
    writeFileSync(file, `${JSON.stringify(summary, null, 2)}\n`);
    process.stdout.write(`${JSON.stringify({ ...summary, stationsAfter: undefined }, null, 2)}\nresults: ${file}\n`);
  } finally {
    await stopAll([...fleets, ...nodes], redis);
  }
}

process.on('SIGINT', () => {
  killAllChildren();
  process.exit(130);
});
process.on('exit', () => killAllChildren());
main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`soak: ${String((error as Error)?.stack ?? error)}\n`);
    killAllChildren();
    process.exit(1);
  },
);
