import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { CallRunResult } from '../apps/call-runner.js';
import { fleetIdentities, loopbackSources, type FloodResult } from '../simulator/fleet.js';
import { CpuWatch, ProcessCpu } from './machine.js';
import { NatsServer } from './nats.js';
import { benchPids, startApp, type BenchApp } from './processes.js';
import { RedisServer } from './redis.js';

/** The implementations measured side by side (ours-nats: our nodes over the NatsTransport). */
export type ImplName = 'ours' | 'ours-nats' | 'ocpp-ws-io' | 'ocpp-rpc' | 'ws' | 'naive-relay' | 'ours-before';

/** Repository root, from dist/bench/harness/. */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

const SCRIPTS: Record<ImplName, string> = {
  ours: join(ROOT, 'dist/bench/apps/ours-node.js'),
  'ours-nats': join(ROOT, 'dist/bench/apps/ours-node.js'),
  'ocpp-ws-io': join(ROOT, 'bench/peers/ocpp-ws-io-node.mjs'),
  'ocpp-rpc': join(ROOT, 'bench/peers/ocpp-rpc-server.mjs'),
  ws: join(ROOT, 'bench/peers/ws-server.mjs'),
  'naive-relay': join(ROOT, 'bench/peers/naive-relay-node.mjs'),
  // Another build of ours (BENCH_BEFORE_DIST: its dist/ directory), to measure a change before/after in one run.
  'ours-before': join(process.env.BENCH_BEFORE_DIST ?? join(ROOT, 'dist'), 'bench/apps/ours-node.js'),
};
const STATIONS_SCRIPT = join(ROOT, 'dist/bench/apps/stations.js');

export interface BenchContext {
  scale: number;
  logDir: string;
  /** Set: our apps in the cross-node and inbound scenarios write CPU profiles here. */
  profileDir?: string;
  protocol: 'ocpp1.6' | 'ocpp2.0.1' | 'ocpp2.1';
  /** Listen backlog of every bench server. */
  backlog: number;
  log(message: string): void;
}

export const DATA_TRANSFER = { vendorId: 'bench', messageId: 'bench', data: 'x'.repeat(64) };

function scaled(ctx: BenchContext, full: number, minimum: number): number {
  return Math.max(minimum, Math.round(full * ctx.scale));
}

export function startImpl(ctx: BenchContext, impl: ImplName, role: string, env: Record<string, string | undefined>, options: { gc?: boolean; profile?: string } = {}): BenchApp {
  const nodeArgs: string[] = ['--max-old-space-size=4096'];
  if (options.gc) nodeArgs.push('--expose-gc');
  if (options.profile && ctx.profileDir && impl === 'ours') {
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${ctx.profileDir}`, `--cpu-prof-name=${options.profile}.cpuprofile`);
  }
  return startApp({ name: `${impl}-${role}`, script: SCRIPTS[impl], env: { BENCH_BACKLOG: String(ctx.backlog), ...env }, nodeArgs, logDir: ctx.logDir });
}

export function startStations(ctx: BenchContext, role: string): BenchApp {
  return startApp({ name: `stations-${role}`, script: STATIONS_SCRIPT, nodeArgs: ['--max-old-space-size=4096'], logDir: ctx.logDir });
}

/** Polls `check` until it returns true; resolves with the elapsed ms, rejects after `timeoutMs`. */
export async function waitUntil(what: string, check: () => Promise<boolean> | boolean, timeoutMs: number, everyMs = 50): Promise<number> {
  const startedAt = performance.now();
  for (;;) {
    let ok: boolean;
    try {
      ok = await check();
    } catch {
      ok = false;
    }
    if (ok) return performance.now() - startedAt;
    if (performance.now() - startedAt > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

export const endpoint = (ready: Record<string, any>): string => `ws://127.0.0.1:${ready.port}/ocpp`;

/** Profiling our apps in this scenario? */
const profiling = (ctx: BenchContext, impl: ImplName): boolean => ctx.profileDir !== undefined && impl === 'ours';

/** A measured window of a CPU profile (µs on V8's profile clock), kept beside the profile. */
function writeProfileWindow(ctx: BenchContext, profile: string, label: string, fromUs: number, toUs: number): void {
  const file = join(ctx.profileDir!, `${profile}.windows.json`);
  const windows = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as unknown[]) : [];
  windows.push({ label, fromUs, toUs });
  writeFileSync(file, `${JSON.stringify(windows)}\n`);
}

/** The server a cluster's nodes share; `stop` kills it and loses what it stored, `launch` starts it again empty. */
export interface Broker {
  /** Its process (CPU per call is measured for it too). */
  readonly pid: number | undefined;
  stop(): Promise<void>;
  launch(): Promise<void>;
}

/** nats-server for ours-nats, Redis for every other cluster; `env` points the nodes at it. */
async function startBroker(ctx: BenchContext, impl: ImplName): Promise<{ broker: Broker; name: string; env: Record<string, string> }> {
  if (impl === 'ours-nats') {
    const nats = await NatsServer.start(ctx.logDir);
    return { broker: nats, name: 'nats-server', env: { BENCH_NATS_URL: nats.url } };
  }
  const redis = await RedisServer.start(ctx.logDir);
  return { broker: redis, name: 'Redis', env: { BENCH_REDIS_URL: redis.url } };
}

export async function stopAll(apps: Array<BenchApp | undefined>, broker?: Broker): Promise<void> {
  await Promise.all(apps.filter((app): app is BenchApp => app !== undefined).map((app) => app.stop()));
  await broker?.stop();
}

export async function bootedStations(stations: BenchApp, count: number, timeoutMs: number): Promise<number> {
  return waitUntil(
    `${count} booted stations`,
    async () => (await stations.request<{ booted: number }>('stats')).booted >= count,
    timeoutMs,
  );
}

// ---------------------------------------------------------------- cross-node commands

/** CPU other processes used while the bench measured (percent of all cores); high = suspect numbers. */
export interface Measured {
  foreignCpuPercent: number | null;
}

/** CPU time per successful call (µs) of the caller node, the owner node and redis-server. */
export interface CpuPerCall {
  caller: number | null;
  owner: number | null;
  redis: number | null;
}

export interface CrossNodeResult extends CallRunResult, Measured {
  stations: number;
  /** CPU per call of each process (robust to other work on the machine, unlike calls/s). */
  cpuUsPerCall?: CpuPerCall;
  /** Interleaved runs (BENCH_ROUNDS): calls/s of each turn. */
  rounds?: number[];
}

/** One implementation's cross-node pair (A calls, B holds 200 stations), warmed up and ready to measure. */
interface CrossNodeSetup {
  measure(total: number): Promise<CrossNodeResult>;
  stop(): Promise<void>;
}

async function setUpCrossNode(ctx: BenchContext, impl: ImplName, stationCount: number, warmupCalls: number): Promise<CrossNodeSetup> {
  const { broker, env: brokerEnv } = await startBroker(ctx, impl);
  let a: BenchApp | undefined;
  let b: BenchApp | undefined;
  let stations: BenchApp | undefined;
  try {
    // BENCH_RELAY_PEER: the naive relay has no presence; its node A is told where the stations are.
    const env = { ...brokerEnv, BENCH_STRICT: '1', BENCH_RATE_LIMIT: 'off', BENCH_RELAY_PEER: 'bench-b' };
    b = startImpl(ctx, impl, 'cross-b', { ...env, BENCH_NODE_ID: 'bench-b' }, { profile: 'cross-node-B' });
    a = startImpl(ctx, impl, 'cross-a', { ...env, BENCH_NODE_ID: 'bench-a' }, { profile: 'cross-node-A' });
    const [, readyB] = await Promise.all([a.ready, b.ready]);
    stations = startStations(ctx, `cross-${impl}`);
    await stations.ready;
    const { identities } = await stations.request<{ identities: string[] }>('start', {
      urls: [endpoint(readyB)],
      count: stationCount,
      protocol: ctx.protocol,
      heartbeatSeconds: 3600,
    });
    await bootedStations(stations, stationCount, 60_000);
    const nodeA = a;
    const nodeB = b;
    await nodeA.request('setIdentities', { identities });
    await waitUntil(`presence of ${stationCount} stations on node A`, async () => (await nodeA.request<number>('presenceCount')) === stationCount, 30_000);
    const calls = { identities, concurrency: 200, warmup: 0, action: 'DataTransfer', payload: DATA_TRANSFER, timeoutMs: 30_000 };
    await nodeA.request('crossNodeCalls', { ...calls, total: warmupCalls }, 5 * 60_000);
    const apps = [stations, a, b];
    return {
      measure: async (total) => {
        const from = profiling(ctx, impl) ? await Promise.all([nodeA.request<number>('mark'), nodeB.request<number>('mark')]) : [];
        const watch = new CpuWatch(benchPids());
        // 'redis': the broker's process (nats-server for ours-nats).
        const processes = new ProcessCpu({ caller: nodeA.pid, owner: nodeB.pid, redis: broker.pid });
        const result = await nodeA.request<CallRunResult>('crossNodeCalls', { ...calls, total }, 15 * 60_000);
        const used = processes.stop();
        const { foreignPercent } = watch.stop();
        const perCall = (us: number | null): number | null => (us === null || result.ok === 0 ? null : us / result.ok);
        const cpuUsPerCall = { caller: perCall(used.caller), owner: perCall(used.owner), redis: perCall(used.redis) };
        if (profiling(ctx, impl)) {
          const to = await Promise.all([nodeA.request<number>('mark'), nodeB.request<number>('mark')]);
          writeProfileWindow(ctx, 'cross-node-A', 'node A (caller), measured calls', from[0], to[0]);
          writeProfileWindow(ctx, 'cross-node-B', 'node B (holds the stations), measured calls', from[1], to[1]);
        }
        return { ...result, stations: stationCount, foreignCpuPercent: foreignPercent, cpuUsPerCall };
      },
      stop: () => stopAll(apps, broker),
    };
  } catch (error) {
    await stopAll([stations, a, b], broker);
    throw error;
  }
}

/** Node A calls DataTransfer on 200 stations held by node B, through Redis (ours-nats: NATS), 200 in flight. */
export async function crossNode(ctx: BenchContext, impl: ImplName): Promise<CrossNodeResult> {
  const total = scaled(ctx, 40_000, 2_000);
  const setup = await setUpCrossNode(ctx, impl, 200, Math.min(4_000, Math.round(total / 10)));
  try {
    ctx.log(`  200 stations on node B; node A sends ${total.toLocaleString('en-US')} DataTransfer calls, 200 in flight`);
    return await setup.measure(total);
  } finally {
    await setup.stop();
  }
}

/**
 * Every implementation set up at once (idle while another measures), then `rounds` rounds of one
 * turn each, every round starting with the next implementation (the first turn after a pause runs
 * on a cooler machine), so that load from other work falls on all of them alike. Returns each
 * implementation's turns, or why it could not be set up.
 */
async function takeTurns<Setup extends { stop(): Promise<void> }, Turn>(
  impls: ImplName[],
  rounds: number,
  setUp: (impl: ImplName) => Promise<Setup>,
  onUp: (count: number) => void,
  measure: (setup: Setup) => Promise<Turn>,
): Promise<{ turns: Map<ImplName, Turn[]>; errors: Partial<Record<ImplName, { error: string }>> }> {
  const setups: Array<[ImplName, Setup]> = [];
  const turns = new Map<ImplName, Turn[]>();
  const errors: Partial<Record<ImplName, { error: string }>> = {};
  try {
    for (const impl of impls) {
      try {
        setups.push([impl, await setUp(impl)]);
        turns.set(impl, []);
      } catch (error) {
        errors[impl] = { error: String((error as Error).message ?? error) };
      }
    }
    onUp(setups.length);
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < setups.length; i++) {
        const [impl, setup] = setups[(round + i) % setups.length];
        turns.get(impl)!.push(await measure(setup));
      }
    }
  } finally {
    await Promise.all(setups.map(([, setup]) => setup.stop()));
  }
  return { turns, errors };
}

const median = (values: number[]): number => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)];

/** Each latency percentile: the median over the turns. */
function medianLatency<L>(turns: Array<{ latencyMs: L }>): L {
  const keys = Object.keys(turns[0].latencyMs as object);
  return Object.fromEntries(keys.map((key) => [key, median(turns.map((turn) => (turn.latencyMs as Record<string, number>)[key]))])) as L;
}

/**
 * The cross-node scenario on a busy machine: every implementation's pair is up at once (idle
 * while another measures), and they take turns, `rounds` times, each turn `total / rounds`
 * calls, so that load from other work falls on all of them alike. Per implementation: calls/s
 * over all its turns, and the median of its turns' latency percentiles.
 */
export async function crossNodeInterleaved(ctx: BenchContext, impls: ImplName[], rounds: number): Promise<Partial<Record<ImplName, CrossNodeResult | { error: string }>>> {
  const total = scaled(ctx, 40_000, 2_000);
  const perTurn = Math.max(500, Math.round(total / rounds));
  const { turns, errors } = await takeTurns(
    impls,
    rounds,
    (impl) => setUpCrossNode(ctx, impl, 200, Math.min(4_000, perTurn)),
    (count) => ctx.log(`  ${count} pairs up; ${rounds} rounds of ${perTurn.toLocaleString('en-US')} DataTransfer calls each, taking turns`),
    (setup) => setup.measure(perTurn),
  );
  const results: Partial<Record<ImplName, CrossNodeResult | { error: string }>> = { ...errors };
  for (const [impl, list] of turns) {
    const durationMs = list.reduce((sum, turn) => sum + turn.durationMs, 0);
    const ok = list.reduce((sum, turn) => sum + turn.ok, 0);
    const errorKinds: Record<string, number> = {};
    for (const turn of list) for (const [kind, n] of Object.entries(turn.errorKinds)) errorKinds[kind] = (errorKinds[kind] ?? 0) + n;
    results[impl] = {
      ...list[0],
      calls: list.reduce((sum, turn) => sum + turn.calls, 0),
      ok,
      errors: list.reduce((sum, turn) => sum + turn.errors, 0),
      errorKinds,
      durationMs,
      callsPerSecond: (ok / durationMs) * 1000,
      latencyMs: medianLatency(list),
      foreignCpuPercent: median(list.map((turn) => turn.foreignCpuPercent ?? 0)),
      rounds: list.map((turn) => Math.round(turn.callsPerSecond)),
      cpuUsPerCall: mergedCpu(list),
    } as CrossNodeResult;
  }
  return results;
}

/** CPU per call over several turns, weighted by each turn's calls. */
function mergedCpu(turns: CrossNodeResult[]): CpuPerCall {
  const merged = (key: keyof CpuPerCall): number | null => {
    let us = 0;
    let calls = 0;
    for (const turn of turns) {
      const perCall = turn.cpuUsPerCall?.[key];
      if (perCall === null || perCall === undefined) return null;
      us += perCall * turn.ok;
      calls += turn.ok;
    }
    return calls === 0 ? null : us / calls;
  };
  return { caller: merged('caller'), owner: merged('owner'), redis: merged('redis') };
}

// ---------------------------------------------------------------- inbound calls

export interface InboundResult extends FloodResult, Measured {
  rateLimit: string;
  /** Interleaved runs (BENCH_ROUNDS): calls/s of each turn. */
  rounds?: number[];
}

interface InboundSetup {
  /** Floods the node for `durationMs` after `warmupMs` (profiled: the measured part is marked). */
  measure(durationMs: number, warmupMs: number): Promise<InboundResult>;
  stop(): Promise<void>;
}

const INBOUND_STATIONS = 200;

/** One node of `impl` with 200 booted stations of its own (strict validation on). */
async function setUpInbound(ctx: BenchContext, impl: ImplName, rateLimit: 'off' | 'default'): Promise<InboundSetup> {
  let server: BenchApp | undefined;
  let stations: BenchApp | undefined;
  // Only the run without a rate limit is profiled (when BENCH_PROFILE asks for this implementation).
  const profile = rateLimit === 'off' ? 'inbound' : undefined;
  const profiled = profile !== undefined && profiling(ctx, impl);
  try {
    server = startImpl(ctx, impl, `inbound${rateLimit === 'off' ? '' : '-ratelimit'}`, { BENCH_NODE_ID: 'bench-solo', BENCH_STRICT: '1', BENCH_RATE_LIMIT: rateLimit }, { profile });
    const ready = await server.ready;
    stations = startStations(ctx, `inbound-${impl}`);
    await stations.ready;
    await stations.request('start', { urls: [endpoint(ready)], count: INBOUND_STATIONS, protocol: ctx.protocol, heartbeatSeconds: 3600 });
    await bootedStations(stations, INBOUND_STATIONS, 60_000);
  } catch (error) {
    await stopAll([stations, server]);
    throw error;
  }
  const node = server;
  const fleet = stations;
  return {
    async measure(durationMs, warmupMs) {
      const from = profiled ? sleep(warmupMs).then(() => node.request<number>('mark')) : undefined;
      const watch = new CpuWatch(benchPids());
      const result = await fleet.request<FloodResult>('flood', { action: 'Heartbeat', payload: {}, warmupMs, durationMs }, durationMs + 60_000);
      const { foreignPercent } = watch.stop();
      if (profiled) writeProfileWindow(ctx, profile!, 'measured flood', (await from)!, await node.request<number>('mark'));
      return { ...result, rateLimit, foreignCpuPercent: foreignPercent };
    },
    stop: () => stopAll([fleet, node]),
  };
}

/** 200 stations send Heartbeat back to back to one node (strict validation on). */
export async function inbound(ctx: BenchContext, impl: ImplName, rateLimit: 'off' | 'default' = 'off'): Promise<InboundResult> {
  const setup = await setUpInbound(ctx, impl, rateLimit);
  try {
    return await setup.measure(scaled(ctx, 10_000, 3_000), 2_000);
  } finally {
    await setup.stop();
  }
}

/**
 * The inbound scenario on a busy machine (BENCH_ROUNDS): every implementation's node and stations
 * up at once, taking turns (see takeTurns). Per implementation: calls/s over all its turns, the
 * median of its turns' latency percentiles.
 */
export async function inboundInterleaved(ctx: BenchContext, impls: ImplName[], rounds: number): Promise<Partial<Record<ImplName, InboundResult | { error: string }>>> {
  // Twice the single run's measuring time, split into turns (short turns see more of the noise).
  const perTurnMs = Math.max(2_000, Math.round((2 * scaled(ctx, 10_000, 3_000)) / rounds));
  const { turns, errors } = await takeTurns(
    impls,
    rounds,
    async (impl) => {
      const setup = await setUpInbound(ctx, impl, 'off');
      // A flood that is not counted: each node's first turn would otherwise run on cold code.
      await setup.measure(2_000, 1_000);
      return setup;
    },
    (count) => ctx.log(`  ${count} nodes up; ${rounds} rounds of ${perTurnMs} ms floods each, taking turns`),
    (setup) => setup.measure(perTurnMs, 1_000),
  );
  const results: Partial<Record<ImplName, InboundResult | { error: string }>> = { ...errors };
  for (const [impl, list] of turns) {
    const durationMs = list.reduce((sum, turn) => sum + turn.durationMs, 0);
    const replies = list.reduce((sum, turn) => sum + turn.replies, 0);
    results[impl] = {
      ...list[0],
      replies,
      failures: list.reduce((sum, turn) => sum + turn.failures, 0),
      durationMs,
      callsPerSecond: (replies / durationMs) * 1000,
      latencyMs: medianLatency(list),
      foreignCpuPercent: median(list.map((turn) => turn.foreignCpuPercent ?? 0)),
      rounds: list.map((turn) => Math.round(turn.callsPerSecond)),
    };
  }
  return results;
}

// ---------------------------------------------------------------- memory

export interface MemoryResult {
  connections: number;
  rssPerConnectionKB: number;
  heapPerConnectionKB: number;
  before: NodeJS.MemoryUsage;
  after: NodeJS.MemoryUsage & { connections: number };
}

/** RSS and heap growth of one node per idle station (after boot, after full GCs). */
export async function memory(
  ctx: BenchContext,
  impl: ImplName,
  stationsSpeak: { protocol: BenchContext['protocol']; deflate: boolean; count?: number } = { protocol: ctx.protocol, deflate: false },
): Promise<MemoryResult> {
  const count = scaled(ctx, stationsSpeak.count ?? 10_000, 500);
  let server: BenchApp | undefined;
  let stations: BenchApp | undefined;
  try {
    server = startImpl(ctx, impl, 'memory', { BENCH_NODE_ID: 'bench-solo', BENCH_STRICT: '1' }, { gc: true });
    const ready = await server.ready;
    const before = await server.request<NodeJS.MemoryUsage>('memory');
    stations = startStations(ctx, 'memory');
    await stations.ready;
    // Paced: this scenario measures idle sockets, not the storm (SYN backlog drops would only slow it).
    await stations.request('start', {
      urls: [endpoint(ready)],
      count,
      protocol: stationsSpeak.protocol,
      deflate: stationsSpeak.deflate,
      connectRate: 2_000,
    });
    await bootedStations(stations, count, 180_000);
    await sleep(2_000);
    const after = await server.request<NodeJS.MemoryUsage & { connections: number }>('memory');
    if (after.connections !== count) throw new Error(`the server holds ${after.connections} connections, expected ${count}`);
    return {
      connections: count,
      rssPerConnectionKB: (after.rss - before.rss) / count / 1024,
      heapPerConnectionKB: (after.heapUsed - before.heapUsed) / count / 1024,
      before,
      after,
    };
  } finally {
    await stopAll([stations, server]);
  }
}

// ---------------------------------------------------------------- 2-node cluster, 10,000 stations

export interface ClusterResult extends Measured {
  stations: number;
  storm: {
    presenceWholeMs: number;
    allConnectedMs: number | null;
    allBootedMs: number | null;
    reconnects: number;
    /** What went wrong on the stations' side during the storm (connect failures, timeouts...). */
    stationErrors: Array<[string, number]>;
  };
  /** Absent for the bare `ws` floor (no cluster). */
  broadcastBatch?:
    | {
        resolvedMs: number;
        outcomes: number;
        fulfilled: number;
        rejected: number;
        errorKinds: Record<string, number>;
        /** Time until the stations had received every call (stations' count), or null. */
        deliveredMs: number | null;
        delivered: number;
      }
    | { error: string };
  /** The shared server killed and restarted empty: Redis, or nats-server for ours-nats. */
  redisRestart?: { presenceWholeMs: number | null; firstRemoteCallMs: number | null; downMs: number } | { error: string };
}

/**
 * 10,000 stations connect at once to a 2-node cluster (time until all are in presence); then
 * broadcastBatch from node A to all of them; then Redis (ours-nats: nats-server) is killed and
 * restarted empty (time until presence is whole again, and until a cross-node call works again).
 */
export async function cluster(ctx: BenchContext, impl: ImplName): Promise<ClusterResult> {
  const count = scaled(ctx, 10_000, 500);
  // The bare `ws` floor runs the storm only: two servers, no Redis; "presence" = its socket map.
  const clustered = impl !== 'ws';
  const shared = clustered ? await startBroker(ctx, impl) : undefined;
  const broker = shared?.broker;
  let a: BenchApp | undefined;
  let b: BenchApp | undefined;
  let stations: BenchApp | undefined;
  try {
    const env = { ...shared?.env, BENCH_STRICT: '1', BENCH_STREAM_MAXLEN: process.env.BENCH_STREAM_MAXLEN };
    a = startImpl(ctx, impl, 'cluster-a', { ...env, BENCH_NODE_ID: 'bench-a' }, { profile: 'cluster-A' });
    b = startImpl(ctx, impl, 'cluster-b', { ...env, BENCH_NODE_ID: 'bench-b' });
    const [readyA, readyB] = await Promise.all([a.ready, b.ready]);
    stations = startStations(ctx, 'cluster');
    await stations.ready;
    const identities = fleetIdentities('SIM', 1, count);
    const nodeA = a;
    const fleet = stations;
    await nodeA.request('setIdentities', { identities });
    const presenceWhole = async (): Promise<boolean> =>
      clustered
        ? (await nodeA.request<number>('presenceCount', {}, 5_000)) === count
        : (await nodeA.request<number>('localCount')) + (await b!.request<number>('localCount')) === count;

    // Storm: every station at once, spread over the two nodes. The probe stays light so it does
    // not slow the nodes it watches: socket counts first (in memory), then presence, and only of
    // the identities not seen yet.
    ctx.log(`  storm: ${count.toLocaleString('en-US')} stations connect at once to 2 nodes`);
    const nodeB = b;
    const stormFrom = profiling(ctx, impl) ? await nodeA.request<number>('mark') : 0;
    const watch = new CpuWatch(benchPids());
    const stormStart = performance.now();
    // Its answer comes once every station connected; a slow one must not crash the run (the waits below judge it).
    fleet.request('start', { urls: [endpoint(readyA), endpoint(readyB)], count, protocol: ctx.protocol, connectRate: 0, localAddresses: loopbackSources(0) }, 600_000).catch((error) => ctx.log(`  stations: ${String(error)}`));
    await waitUntil(
      'every socket to reach a node',
      async () => (await nodeA.request<number>('localCount')) + (await nodeB.request<number>('localCount')) >= count,
      120_000,
      50,
    );
    await waitUntil('presence of every station', presenceWhole, 120_000, 50);
    const presenceWholeMs = performance.now() - stormStart;
    if (profiling(ctx, impl)) writeProfileWindow(ctx, 'cluster-A', 'node A, reconnect storm', stormFrom, await nodeA.request<number>('mark'));
    await bootedStations(fleet, count, 120_000);
    const stormStats = await fleet.request<{
      allConnectedMs: number | null;
      allBootedMs: number | null;
      reconnects: number;
      topErrors: Array<[string, number]>;
    }>('stats');
    const result: ClusterResult = {
      foreignCpuPercent: watch.stop().foreignPercent,
      stations: count,
      storm: {
        presenceWholeMs,
        allConnectedMs: stormStats.allConnectedMs,
        allBootedMs: stormStats.allBootedMs,
        reconnects: stormStats.reconnects,
        stationErrors: stormStats.topErrors,
      },
    };
    if (!shared || !broker) return result;

    // broadcastBatch to every identity from node A.
    try {
      ctx.log(`  broadcastBatch: DataTransfer to ${count.toLocaleString('en-US')} identities from node A`);
      const dataTransfers = async (): Promise<number> =>
        ((await fleet.request<{ inboundByAction: Record<string, number> }>('stats')).inboundByAction.DataTransfer ?? 0);
      const before = await dataTransfers();
      const batchStart = performance.now();
      const batch = await nodeA.request<{ durationMs: number; outcomes: number; fulfilled: number; rejected: number; errorKinds: Record<string, number> }>(
        'broadcastBatch',
        { action: 'DataTransfer', payload: DATA_TRANSFER, timeoutMs: 30_000 },
        120_000,
      );
      let deliveredMs: number | null = null;
      try {
        await waitUntil('every station to receive the batch', async () => (await dataTransfers()) - before >= count, 40_000, 20);
        deliveredMs = performance.now() - batchStart;
      } catch {
        deliveredMs = null;
      }
      result.broadcastBatch = { resolvedMs: batch.durationMs, ...batch, deliveredMs, delivered: (await dataTransfers()) - before };
    } catch (error) {
      result.broadcastBatch = { error: String((error as Error).message ?? error) };
    }

    // Redis (or nats-server) killed and restarted empty under 10,000 connections.
    try {
      ctx.log(`  ${shared.name} killed and restarted empty`);
      await nodeA.request('resetPresence');
      const restartFrom = profiling(ctx, impl) ? await nodeA.request<number>('mark') : 0;
      const downAt = performance.now();
      await broker.stop();
      await broker.launch();
      const backAt = performance.now();
      let presenceWholeAfterMs: number | null = null;
      let firstRemoteCallMs: number | null = null;
      // identities[1] sits on node B (round-robin over [A, B]): a call from A crosses the broker.
      const remoteCall = (async () => {
        try {
          await waitUntil(
            'a cross-node call',
            async () => {
              await nodeA.request('call', { identity: identities[1], action: 'DataTransfer', payload: DATA_TRANSFER, timeoutMs: 1_000 }, 5_000);
              return true;
            },
            60_000,
            20,
          );
          firstRemoteCallMs = performance.now() - backAt;
        } catch {
          firstRemoteCallMs = null;
        }
      })();
      try {
        await waitUntil('presence to be whole again', presenceWhole, 60_000, 50);
        presenceWholeAfterMs = performance.now() - backAt;
      } catch {
        presenceWholeAfterMs = null;
      }
      await remoteCall;
      if (profiling(ctx, impl)) writeProfileWindow(ctx, 'cluster-A', 'node A, Redis restart until presence whole', restartFrom, await nodeA.request<number>('mark'));
      result.redisRestart = { presenceWholeMs: presenceWholeAfterMs, firstRemoteCallMs, downMs: backAt - downAt };
    } catch (error) {
      result.redisRestart = { error: String((error as Error).message ?? error) };
    }
    return result;
  } finally {
    await stopAll([stations, a, b], broker);
  }
}
