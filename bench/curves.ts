import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CallRunResult } from './apps/call-runner.js';
import { lineCharts, type LineChart } from './harness/charts.js';
import { killAllChildren, type BenchApp } from './harness/processes.js';
import { RedisServer, redisCommand, redisUsedMemory } from './harness/redis.js';
import { DATA_TRANSFER, ROOT, bootedStations, endpoint, startImpl, startStations, stopAll, waitUntil, type BenchContext } from './harness/scenarios.js';
import { fleetIdentities, loopbackSources } from './simulator/fleet.js';

/**
 * `npm run bench -- --curves`: how our costs grow. Fleet sizes (BENCH_CURVE_SIZES, default
 * 1000,5000,10000,25000,50000) over 4 nodes: RSS per connection, storm time, presence claims per
 * second, Redis memory per charger, broadcastBatch time; then cross-node throughput with 2, 3 and
 * 4 nodes (BENCH_CURVE_NODES). Writes JSON and an SVG to bench/results/ (latest-curves.svg too).
 */

const FLEET_NODES = 4;
/** Stations per simulator process (each socket is a file descriptor on both sides). */
const STATIONS_PER_PROCESS = 12_500;

function listFromEnv(name: string, fallback: number[]): number[] {
  const raw = process.env[name];
  if (!raw) return fallback;
  const values = raw.split(',').map((value) => Number(value.trim()));
  if (values.some((value) => !Number.isInteger(value) || value <= 0)) throw new Error(`${name}: positive integers, comma-separated`);
  return values;
}

interface FleetPoint {
  stations: number;
  nodes: number;
  stormPresenceMs: number;
  presenceClaimsPerSecond: number;
  allBootedMs: number;
  rssPerConnectionKB: number;
  heapPerConnectionKB: number;
  redisBytesPerCharger: number;
  redisKeys: number;
  broadcastBatchMs: number;
  broadcastFulfilled: number;
}

async function memoryOf(nodes: BenchApp[]): Promise<Array<NodeJS.MemoryUsage & { connections: number }>> {
  return Promise.all(nodes.map((node) => node.request<NodeJS.MemoryUsage & { connections: number }>('memory')));
}

/** `size` stations storm 4 nodes at once; then memory (nodes and Redis) and a broadcastBatch to all. */
async function fleetPoint(ctx: BenchContext, size: number): Promise<FleetPoint> {
  const redis = await RedisServer.start(ctx.logDir);
  const nodes: BenchApp[] = [];
  const fleets: BenchApp[] = [];
  try {
    const redisBefore = await redisUsedMemory(redis.port);
    for (let i = 0; i < FLEET_NODES; i++) {
      nodes.push(startImpl(ctx, 'ours', `fleet${size}-${i}`, { BENCH_REDIS_URL: redis.url, BENCH_NODE_ID: `fleet-${i}`, BENCH_STRICT: '1' }, { gc: true }));
    }
    const ready = await Promise.all(nodes.map((node) => node.ready));
    const before = await memoryOf(nodes);
    const identities = fleetIdentities('SIM', 1, size);
    const nodeA = nodes[0];
    await nodeA.request('setIdentities', { identities });
    const chunks = Math.ceil(size / STATIONS_PER_PROCESS);
    for (let p = 0; p < chunks; p++) fleets.push(startStations(ctx, `fleet${size}-${p}`));
    await Promise.all(fleets.map((fleet) => fleet.ready));

    ctx.log(`  ${size.toLocaleString('en-US')} stations connect at once to ${FLEET_NODES} nodes (${chunks} simulator processes)`);
    const stormStart = performance.now();
    fleets.forEach((fleet, p) => {
      const count = Math.min(STATIONS_PER_PROCESS, size - p * STATIONS_PER_PROCESS);
      void fleet
        .request('start', { urls: ready.map(endpoint), count, startIndex: 1 + p * STATIONS_PER_PROCESS, protocol: ctx.protocol, connectRate: 0, localAddresses: loopbackSources(p) }, 600_000)
        .catch((error) => ctx.log(`  simulator ${p}: ${String(error)}`));
    });
    const localTotal = async (): Promise<number> => (await Promise.all(nodes.map((node) => node.request<number>('localCount')))).reduce((a, b) => a + b, 0);
    await waitUntil('every socket to reach a node', async () => (await localTotal()) >= size, 300_000, 100);
    await waitUntil('presence of every station', async () => (await nodeA.request<number>('presenceCount', {}, 30_000)) === size, 300_000, 100);
    const stormPresenceMs = performance.now() - stormStart;
    await Promise.all(
      fleets.map((fleet, p) => bootedStations(fleet, Math.min(STATIONS_PER_PROCESS, size - p * STATIONS_PER_PROCESS), 300_000)),
    );
    const allBootedMs = performance.now() - stormStart;
    await sleep(2_000);

    const after = await memoryOf(nodes);
    const sum = (list: number[]): number => list.reduce((a, b) => a + b, 0);
    const connections = sum(after.map((m) => m.connections));
    if (connections !== size) throw new Error(`the nodes hold ${connections} connections, expected ${size}`);
    const rssPerConnectionKB = sum(after.map((m, i) => m.rss - before[i].rss)) / size / 1024;
    const heapPerConnectionKB = sum(after.map((m, i) => m.heapUsed - before[i].heapUsed)) / size / 1024;
    const redisBytesPerCharger = ((await redisUsedMemory(redis.port)) - redisBefore) / size;
    const redisKeys = Number(/:(\d+)/.exec(await redisCommand(redis.port, ['DBSIZE']))?.[1] ?? NaN);

    ctx.log(`  broadcastBatch: DataTransfer to ${size.toLocaleString('en-US')} identities from node 0`);
    const batch = await nodeA.request<{ durationMs: number; fulfilled: number }>('broadcastBatch', { action: 'DataTransfer', payload: DATA_TRANSFER, timeoutMs: 60_000 }, 300_000);
    return {
      stations: size,
      nodes: FLEET_NODES,
      stormPresenceMs,
      presenceClaimsPerSecond: size / (stormPresenceMs / 1000),
      allBootedMs,
      rssPerConnectionKB,
      heapPerConnectionKB,
      redisBytesPerCharger,
      redisKeys,
      broadcastBatchMs: batch.durationMs,
      broadcastFulfilled: batch.fulfilled,
    };
  } finally {
    await stopAll([...fleets, ...nodes], redis);
  }
}

interface NodesPoint {
  nodes: number;
  stations: number;
  calls: number;
  callsPerSecond: number;
  p99Ms: number;
  errors: number;
}

/** `k` nodes in a ring, 100 stations each: every node calls the next node's stations, 100 in flight. */
async function crossNodeWithNodes(ctx: BenchContext, k: number, totalCalls: number): Promise<NodesPoint> {
  const perNode = 100;
  const redis = await RedisServer.start(ctx.logDir);
  const nodes: BenchApp[] = [];
  let fleet: BenchApp | undefined;
  try {
    for (let i = 0; i < k; i++) {
      nodes.push(startImpl(ctx, 'ours', `ring${k}-${i}`, { BENCH_REDIS_URL: redis.url, BENCH_NODE_ID: `ring-${i}`, BENCH_STRICT: '1', BENCH_RATE_LIMIT: 'off' }));
    }
    const ready = await Promise.all(nodes.map((node) => node.ready));
    fleet = startStations(ctx, `ring${k}`);
    await fleet.ready;
    const { identities } = await fleet.request<{ identities: string[] }>('start', { urls: ready.map(endpoint), count: perNode * k, protocol: ctx.protocol, heartbeatSeconds: 3600 });
    await bootedStations(fleet, perNode * k, 60_000);
    // The simulator spreads station j over urls[j % k].
    const heldBy = (node: number): string[] => identities.filter((_, j) => j % k === node);
    const targets = nodes.map((_, i) => heldBy((i + 1) % k));
    await Promise.all(
      nodes.map(async (node, i) => {
        await node.request('setIdentities', { identities: targets[i] });
        await waitUntil(`presence on ring node ${i}`, async () => (await node.request<number>('presenceCount')) === perNode, 30_000);
      }),
    );
    const calls = (i: number, total: number) => ({ identities: targets[i], concurrency: perNode, warmup: 0, action: 'DataTransfer', payload: DATA_TRANSFER, timeoutMs: 30_000, total });
    await Promise.all(nodes.map((node, i) => node.request('crossNodeCalls', calls(i, 1_000), 300_000)));
    const share = Math.round(totalCalls / k);
    const startedAt = performance.now();
    const results = await Promise.all(nodes.map((node, i) => node.request<CallRunResult>('crossNodeCalls', calls(i, share), 900_000)));
    const wallMs = performance.now() - startedAt;
    const ok = results.reduce((sum, result) => sum + result.ok, 0);
    return {
      nodes: k,
      stations: perNode * k,
      calls: share * k,
      callsPerSecond: (ok / wallMs) * 1000,
      p99Ms: Math.max(...results.map((result) => result.latencyMs.p99)),
      errors: results.reduce((sum, result) => sum + result.errors, 0),
    };
  } finally {
    await stopAll([fleet, ...nodes], redis);
  }
}

export async function runCurves(): Promise<void> {
  const sizes = listFromEnv('BENCH_CURVE_SIZES', [1_000, 5_000, 10_000, 25_000, 50_000]);
  const nodeCounts = listFromEnv('BENCH_CURVE_NODES', [2, 3, 4]);
  const ringCalls = Number(process.env.BENCH_CURVE_CALLS ?? 30_000);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const resultsDir = join(ROOT, 'bench/results');
  mkdirSync(resultsDir, { recursive: true });
  const startedAt = performance.now();
  const ctx: BenchContext = {
    scale: 1,
    logDir: mkdtempSync(join(tmpdir(), 'ocpp-curves-')),
    protocol: 'ocpp1.6',
    backlog: Number(process.env.BENCH_BACKLOG ?? 4096),
    log: (message) => process.stderr.write(`[${Math.round((performance.now() - startedAt) / 1000)} s] ${message}\n`),
  };
  ctx.log(`curves: fleet sizes ${sizes.join(', ')} over ${FLEET_NODES} nodes; cross-node with ${nodeCounts.join(', ')} nodes; logs in ${ctx.logDir}`);
  const fleet: Array<FleetPoint | { stations: number; error: string }> = [];
  for (const size of sizes) {
    try {
      fleet.push(await fleetPoint(ctx, size));
      ctx.log(`  ${JSON.stringify(fleet.at(-1))}`);
    } catch (error) {
      ctx.log(`  ${size}: FAILED ${String((error as Error).stack ?? error)}`);
      fleet.push({ stations: size, error: String((error as Error).message ?? error) });
    }
  }
  const ring: Array<NodesPoint | { nodes: number; error: string }> = [];
  for (const k of nodeCounts) {
    try {
      ctx.log(`cross-node ring of ${k} nodes, ${ringCalls.toLocaleString('en-US')} calls`);
      ring.push(await crossNodeWithNodes(ctx, k, ringCalls));
      ctx.log(`  ${JSON.stringify(ring.at(-1))}`);
    } catch (error) {
      ring.push({ nodes: k, error: String((error as Error).message ?? error) });
    }
  }

  const machine = `${cpus().length} cores, ${cpus()[0]?.model ?? 'unknown'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
  const file = join(resultsDir, `${stamp}-curves.json`);
  writeFileSync(file, `${JSON.stringify({ machine, fleet, ring }, null, 2)}\n`);
  render(resultsDir, stamp, { machine, fleet, ring }, file);
}

type CurvesResults = { machine: string; fleet: Array<FleetPoint | { stations: number; error: string }>; ring: Array<NodesPoint | { nodes: number; error: string }> };

/** The SVG (stamped and latest-curves.svg) and the Markdown tables of one curves run. */
function render(resultsDir: string, stamp: string, { machine, fleet, ring }: CurvesResults, file: string): void {
  const okFleet = fleet.filter((point): point is FleetPoint => !('error' in point));
  const okRing = ring.filter((point): point is NodesPoint => !('error' in point));
  const curve = (title: string, yLabel: string, y: (point: FleetPoint) => number): LineChart => ({
    title,
    xLabel: `stations over ${FLEET_NODES} nodes`,
    yLabel,
    series: [{ name: 'ours', points: okFleet.map((point) => [point.stations, y(point)]) }],
  });
  const charts: LineChart[] = [
    curve('RSS per connection (all 4 nodes)', 'KB', (p) => p.rssPerConnectionKB),
    curve('Redis memory per charger', 'bytes', (p) => p.redisBytesPerCharger),
    curve('Storm: all connect at once, until all in presence', 's', (p) => p.stormPresenceMs / 1000),
    curve('Presence claims per second during the storm', 'claims/s', (p) => p.presenceClaimsPerSecond),
    curve('broadcastBatch to every station, all outcomes back', 'ms', (p) => p.broadcastBatchMs),
    {
      title: 'Cross-node DataTransfer, ring of k nodes (sum)',
      xLabel: 'nodes',
      yLabel: 'calls/s',
      series: [{ name: 'ours', points: okRing.map((point) => [point.nodes, point.callsPerSecond]) }],
    },
  ];
  const svg = lineCharts('nestjs-ocpp-cluster: scale curves', `${stamp.slice(0, 16)} · ${machine} · one run`, charts);
  writeFileSync(join(resultsDir, `${stamp}-curves.svg`), svg);
  writeFileSync(join(resultsDir, 'latest-curves.svg'), svg);

  const lines = [
    `## Scale curves (${machine})`,
    '',
    '| stations (4 nodes) | RSS KB/conn | heap KB/conn | Redis B/charger | Redis keys | storm s to presence | claims/s | all booted s | broadcastBatch ms (fulfilled) |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...fleet.map((p) =>
      'error' in p
        ? `| ${p.stations} | failed: ${p.error.slice(0, 80)} | | | | | | | |`
        : `| ${p.stations} | ${p.rssPerConnectionKB.toFixed(1)} | ${p.heapPerConnectionKB.toFixed(1)} | ${Math.round(p.redisBytesPerCharger)} | ${p.redisKeys} | ${(p.stormPresenceMs / 1000).toFixed(2)} | ${Math.round(p.presenceClaimsPerSecond)} | ${(p.allBootedMs / 1000).toFixed(2)} | ${Math.round(p.broadcastBatchMs)} (${p.broadcastFulfilled}) |`,
    ),
    '',
    '| nodes (ring) | stations | calls | calls/s (sum) | worst p99 ms | errors |',
    '| --- | --- | --- | --- | --- | --- |',
    ...ring.map((p) =>
      'error' in p
        ? `| ${p.nodes} | failed: ${p.error.slice(0, 80)} | | | | |`
        : `| ${p.nodes} | ${p.stations} | ${p.calls} | ${Math.round(p.callsPerSecond)} | ${p.p99Ms.toFixed(1)} | ${p.errors} |`,
    ),
    '',
    `results: ${file}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

process.on('SIGINT', () => {
  killAllChildren();
  process.exit(130);
});
process.on('exit', () => killAllChildren());
// BENCH_CURVES_FROM=<a curves JSON>: draw that run again (no measuring).
const from = process.env.BENCH_CURVES_FROM;
const job = from
  ? Promise.resolve().then(() => {
      const stamp = /(\d{4}-\d\d-\d\dT\d\d-\d\d)/.exec(from)?.[1] ?? 'unknown';
      render(join(ROOT, 'bench/results'), `${stamp}-redrawn`, JSON.parse(readFileSync(from, 'utf8')) as CurvesResults, from);
    })
  : runCurves();
job.then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`curves: ${String((error as Error)?.stack ?? error)}\n`);
    killAllChildren();
    process.exit(1);
  },
);
