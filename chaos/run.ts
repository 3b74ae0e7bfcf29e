import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { freePort } from '../test/support/redis-server.js';
import { analyze } from './analyze.js';
import type { Analysis } from './analyze.js';
import { ChargePoint } from './charge-point.js';
import { controlRequest } from './control-client.js';
import { runFaults } from './faults.js';
import { NatsUnderTest } from './nats-under-test.js';
import { NodeProcess } from './node-process.js';
import { faultsOf } from './options.js';
import type { ChaosOptions } from './options.js';
import { emptyRecords } from './records.js';
import type { CheckSettings, FinalNodeState } from './records.js';
import { RedisUnderTest } from './redis-under-test.js';
import { Rng } from './rng.js';
import { plantCanary } from './self-test.js';
import { Workload } from './workload.js';

const NODE_IDS = ['chaos-a', 'chaos-b', 'chaos-c'];
const CALL_TIMEOUT_MS = 4_000;
const TIMEOUTS = [1_500, 3_000, 6_000];
const DRAIN_WINDOW_MS = 1_000;
const DRAIN_SETTLE_MS = 500;
/** Past its timeout, a request waits this long for its HTTP answer before it counts as hung. */
const ABORT_MARGIN_MS = 20_000;
const READY_BOUND_MS = 30_000;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Settings of the proof for a run with these options. */
export function checkSettings(options: ChaosOptions): CheckSettings {
  return {
    toleranceMs: options.toleranceMs,
    answerMarginMs: 3_000,
    stableMs: options.nodeTtlMs + 1_000,
    faultSettleMs: 2 * options.nodeTtlMs + 2_000,
  };
}

export interface RunResult {
  analysis: Analysis;
  canaryDetected: boolean | null;
  logDir: string;
}

/** One chaos run: Redis or NATS, 3 sample nodes, the charge points, callers and faults; then the proof. */
export async function runChaos(options: ChaosOptions, log: (line: string) => void): Promise<RunResult> {
  const rng = new Rng(options.seed);
  const records = emptyRecords();
  const logDir = mkdtempSync(join(tmpdir(), 'ocpp-chaos-'));
  const token = randomBytes(16).toString('hex');
  const settings = checkSettings(options);
  const started = Date.now();
  const redis = options.transport === 'redis' ? await RedisUnderTest.start(options.redis) : null;
  const nats = options.transport === 'nats' ? await NatsUnderTest.start(options.nats) : null;
  const backend = (redis ?? nats)!;
  const backendLabel = nats ? nats.label : `Redis ${options.redis}`;
  log(`seed ${options.seed}, ${backendLabel}, ${options.chargers} charge points, ${options.callsPerSecond} calls/s, ${options.seconds} s; node logs in ${logDir}`);
  const nodes: NodeProcess[] = [];
  const chargers: ChargePoint[] = [];
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  const killLeftovers = () => nodes.forEach((node) => node.pid !== undefined && node.running && process.kill(node.pid, 'SIGKILL'));
  process.once('exit', killLeftovers);
  try {
    // busy-node: a stall past the TTL, well within the nodes' default stallToleranceMs (30 s).
    const busyMs = options.nodeTtlMs + 2_000;
    const env = {
      ...backend.nodeEnv(),
      OCPP_NODE_TTL_MS: String(options.nodeTtlMs),
      OCPP_CALL_TIMEOUT_MS: String(CALL_TIMEOUT_MS),
      OCPP_DRAIN_WINDOW_MS: String(DRAIN_WINDOW_MS),
      OCPP_DRAIN_SETTLE_MS: String(DRAIN_SETTLE_MS),
      CONTROL_TOKEN: token,
      STALL_MS: String(busyMs),
    };
    for (const nodeId of NODE_IDS) nodes.push(new NodeProcess(nodeId, await freePort(), env, join(logDir, `${nodeId}.log`)));
    const restart = async (node: NodeProcess): Promise<void> => {
      for (let attempt = 1; attempt <= 5 && !node.running; attempt++) {
        try {
          await node.start();
        } catch (error) {
          records.incidents.push({ kind: 'node-start-failed', at: Date.now(), detail: `${node.nodeId} attempt ${attempt}: ${(error as Error).message}` });
          log(`${node.nodeId} failed to start (attempt ${attempt}): ${(error as Error).message}`);
          await sleep(1_000);
        }
      }
    };
    // Before the workload a node that cannot start (a JetStream cluster still placing its first
    // replicated streams answers late) is started again; only starts after a fault are incidents.
    const startBeforeWorkload = async (node: NodeProcess): Promise<void> => {
      for (let attempt = 1; attempt <= 5 && !node.running; attempt++) {
        await node.start().catch(async (error: unknown) => {
          log(`${node.nodeId} failed to start before the workload (attempt ${attempt}): ${(error as Error).message}`);
          await sleep(1_000);
        });
      }
    };
    await Promise.all(nodes.map((node) => startBeforeWorkload(node)));
    const notStarted = nodes.filter((node) => !node.running).map((node) => node.nodeId);
    if (notStarted.length > 0) throw new Error(`${notStarted.join(', ')} did not start in 5 attempts (see the node logs in ${logDir})`);
    log(`${backendLabel} and ${nodes.length} nodes up in ${Date.now() - started} ms (ports ${nodes.map((node) => node.port).join(', ')})`);
    const directory = {
      connectable: () => nodes.filter((node) => node.state === 'up').map((node) => node.nodeId),
      wsUrl: (nodeId: string) => nodes.find((node) => node.nodeId === nodeId)!.wsUrl,
    };
    for (let i = 0; i < options.chargers; i++) {
      const identity = `CHAOS${String(i).padStart(4, '0')}`;
      chargers.push(new ChargePoint(identity, rng.chance(0.6) ? 'ocpp1.6' : 'ocpp2.0.1', directory, records, rng));
    }
    for (const [i, charger] of chargers.entries()) {
      charger.connect(NODE_IDS[i % NODE_IDS.length]);
      if (i % 50 === 49) await sleep(100);
    }
    await waitUntil(() => chargers.every((charger) => charger.connected), 30_000);
    log(`${chargers.filter((charger) => charger.connected).length}/${chargers.length} charge points connected`);

    loopDelay.enable();
    const stopAt = Date.now() + options.seconds * 1000;
    const behaviour = setInterval(() => {
      const charger = rng.pick(chargers);
      const roll = rng.next();
      if (roll < 0.4) charger.reconnect();
      else if (roll < 0.7) charger.move();
      else charger.reboot();
    }, 300);
    const workload = new Workload(nodes, chargers, records, rng, {
      callsPerSecond: options.callsPerSecond,
      timeouts: TIMEOUTS,
      abortMarginMs: ABORT_MARGIN_MS,
      token,
    });
    workload.start();
    const faults = runFaults(
      {
        nodes,
        redis,
        nats,
        records,
        rng,
        ttlMs: options.nodeTtlMs,
        shutdownBoundMs: DRAIN_WINDOW_MS + DRAIN_SETTLE_MS + 10_000,
        busyMs,
        restart,
        loadNode: async (nodeId) => {
          workload.burst(nodeId);
          await sleep(300);
        },
        log: (line) => log(`${((Date.now() - stopAt) / 1000 + options.seconds).toFixed(1)}s ${line}`),
      },
      options.faults ?? faultsOf(options),
      stopAt,
    );
    const peakRss = new Map<string, number>();
    const rssSampler = setInterval(() => {
      for (const node of nodes) peakRss.set(node.nodeId, Math.max(peakRss.get(node.nodeId) ?? 0, node.rssBytes() ?? 0));
    }, 2_000);

    await sleep(Math.max(0, stopAt - Date.now()));
    clearInterval(behaviour);
    await faults;
    log(`chaos over after ${options.seconds} s (+${Date.now() - stopAt} ms to undo the last fault); waiting for calls in flight`);
    await workload.stop();
    loopDelay.disable();
    clearInterval(rssSampler);
    log(`checker event loop delay: p99 ${(loopDelay.percentile(99) / 1e6).toFixed(0)} ms, max ${(loopDelay.max / 1e6).toFixed(0)} ms (clock tolerance ${options.toleranceMs} ms)`);

    // Quiescence: every node up and ready, every charge point connected, then one snapshot.
    for (const node of nodes) if (node.state === 'frozen') node.thaw();
    await Promise.all(nodes.map((node) => restart(node)));
    await backend.waitHealthy();
    await waitUntil(async () => (await Promise.all(nodes.map((node) => health(node, token)))).every((h) => h.status === 200), READY_BOUND_MS);
    await waitUntil(() => chargers.every((charger) => charger.connected), READY_BOUND_MS);
    await sleep(Math.max(5_000, 3 * options.nodeTtlMs));
    records.final = {
      at: Date.now(),
      nodes: await Promise.all(nodes.map((node) => finalNodeState(node, token))),
      openSockets: chargers.flatMap((charger) => charger.openSockets()),
      disconnected: chargers.filter((charger) => !charger.connected).map((charger) => charger.identity),
      rssLimitBytes: options.rssLimitMb * 2 ** 20,
    };
    log(`peak RSS during the run: ${[...peakRss].map(([node, bytes]) => `${node} ${(bytes / 2 ** 20).toFixed(0)} MiB`).join(', ')}; at the end: ${records.final.nodes.map((n) => `${n.node} ${((n.rssBytes ?? 0) / 2 ** 20).toFixed(0)} MiB`).join(', ')}`);
    log(`recorded ${records.calls.length} commands, ${records.receipts.length} receipts, ${records.sockets.length} sockets, ${records.faults.length} faults`);

    writeFileSync(join(logDir, 'records.json'), JSON.stringify({ settings, records }));
    const analysis = analyze(records, settings);
    const canary = plantCanary(records);
    const canaryDetected = canary
      ? analyze(canary.records, settings).violations.some((violation) => violation.kind === canary.expect && violation.detail.includes(canary.tag))
      : null;
    return { analysis, canaryDetected, logDir };
  } finally {
    for (const charger of chargers) charger.stop();
    await Promise.all(nodes.map((node) => (node.state === 'frozen' ? node.kill9() : node.terminate(10_000))));
    await backend.stop();
    process.removeListener('exit', killLeftovers);
    log(`total ${((Date.now() - started) / 1000).toFixed(0)} s`);
  }
}

async function health(node: NodeProcess, token: string): Promise<{ status: number | null; body: unknown }> {
  const answer = await controlRequest(node.httpUrl, 'GET', '/health', token, undefined, 5_000);
  return answer.kind === 'answer' ? { status: answer.status, body: answer.body } : { status: null, body: answer.kind };
}

async function finalNodeState(node: NodeProcess, token: string): Promise<FinalNodeState> {
  const [ready, chargers] = await Promise.all([health(node, token), controlRequest(node.httpUrl, 'GET', '/chargers', token, undefined, 10_000)]);
  const presence =
    chargers.kind === 'answer' && chargers.status === 200 && Array.isArray(chargers.body)
      ? (chargers.body as Array<{ identity: string; nodeId: string }>).map(({ identity, nodeId }) => ({ identity, nodeId }))
      : null;
  return { node: node.nodeId, healthStatus: ready.status, healthBody: ready.body, presence, rssBytes: node.rssBytes() };
}

/** Waits for a condition, bounded; the final snapshot then states what holds (no assertion hides here). */
async function waitUntil(condition: () => boolean | Promise<boolean>, boundMs: number): Promise<void> {
  const giveUpAt = Date.now() + boundMs;
  while (!(await condition()) && Date.now() < giveUpAt) await sleep(250);
}

