import type { Bar, BarPanel } from './charts.js';
import type { ClusterResult, CrossNodeResult, ImplName, InboundResult, MemoryResult } from './scenarios.js';

export type Outcome<T> = T | { error: string };
export type ByImpl<T> = Partial<Record<string, Outcome<T>>>;

export interface BenchResults {
  crossNode: ByImpl<CrossNodeResult>;
  inbound: ByImpl<InboundResult>;
  memory: ByImpl<MemoryResult>;
  /** The same with OCPP 2.0.1 stations that offer permessage-deflate (as 2.x stations may). */
  memoryDeflate: ByImpl<MemoryResult>;
  cluster: ByImpl<ClusterResult>;
}

const IMPLS: ImplName[] = ['ours', 'ours-nats', 'ocpp-ws-io', 'ocpp-rpc', 'ws', 'naive-relay'];

const isError = (value: unknown): value is { error: string } =>
  typeof value === 'object' && value !== null && 'error' in value && typeof (value as { error: unknown }).error === 'string';

function ok<T>(value: Outcome<T> | undefined): T | undefined {
  return value === undefined || isError(value) ? undefined : value;
}

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const ms = (n: number): string => (n >= 100 ? int(n) : n.toFixed(n >= 10 ? 1 : 2));
const ratio = (a: number | undefined, b: number | undefined): number | undefined =>
  a === undefined || b === undefined || b === 0 ? undefined : a / b;
const times = (r: number | undefined): string => (r === undefined ? '–' : `${r.toFixed(2)}×`);
const verdict = (met: boolean | undefined): string => (met === undefined ? '–' : met ? '**met**' : 'not met');

/**
 * The comparison cell with ours-nats beside ours when it was measured: `ours` says how ours (Redis)
 * compares, `nats(...)` the same for ours-nats; the goals stay those of ours over Redis.
 */
function withNats(ours: string, nats: string | undefined): string {
  return nats === undefined ? ours : `${ours}; ours-nats ${nats}`;
}

/** Above this share of the CPU used by other processes during a measurement, its cells get a †. */
export const NOISY_PERCENT = 10;

function cell<T>(results: ByImpl<T>, impl: string, show: (value: T) => string): string {
  const value = results[impl];
  if (value === undefined) return '–';
  if (isError(value)) return `failed: ${value.error.split('\n')[0].slice(0, 80)}`;
  const foreign = (value as { foreignCpuPercent?: number | null }).foreignCpuPercent;
  const text = show(value);
  return text !== '–' && foreign !== undefined && foreign !== null && foreign > NOISY_PERCENT ? `${text} †` : text;
}

interface Row {
  scenario: string;
  measure: string;
  cells: string[];
  comparison: string;
  goal: string;
  met: string;
}

/** The Markdown table of the issue: every scenario, ours and the peers, ratios and goals. */
export function markdownTable(results: BenchResults, scale: number): string {
  const rows: Row[] = [];
  const measuredBefore = Object.values(results).some((byImpl: ByImpl<unknown>) => byImpl['ours-before'] !== undefined);
  const columns: string[] = measuredBefore ? [...IMPLS, 'ours-before'] : IMPLS;
  const k = (n: number): string => (n >= 1000 ? `${(n / 1000).toFixed(n % 1000 === 0 ? 0 : 1)}k` : String(n));

  // cross-node
  {
    const r = results.crossNode;
    const ours = ok(r.ours);
    const peer = ok(r['ocpp-ws-io']);
    const relay = ok(r['naive-relay']);
    const nats = ok(r['ours-nats']);
    const calls = ours?.calls ?? nats?.calls ?? peer?.calls ?? Math.round(40_000 * scale);
    const scenario = `cross-node: A calls B's 200 stations, ${k(calls)} DataTransfer, 200 in flight`;
    const throughput = ratio(ours?.callsPerSecond, peer?.callsPerSecond);
    const vsRelay = ratio(ours?.callsPerSecond, relay?.callsPerSecond);
    const p99 = ratio(ours?.latencyMs.p99, peer?.latencyMs.p99);
    const errors = (v: CrossNodeResult): string => (v.errors > 0 ? ` (${int(v.errors)} errors)` : '');
    rows.push({
      scenario,
      measure: 'calls/s',
      cells: columns.map((impl) => cell(r, impl, (v) => `${int(v.callsPerSecond)}${errors(v)}`)),
      comparison: withNats(
        `${times(throughput)} ocpp-ws-io, ${times(vsRelay)} naive relay`,
        nats && `${times(ratio(nats.callsPerSecond, peer?.callsPerSecond))} ocpp-ws-io, ${times(ratio(nats.callsPerSecond, ours?.callsPerSecond))} ours`,
      ),
      goal: '≥ 2.5× ocpp-ws-io; > 1.0× naive relay',
      met:
        throughput === undefined && vsRelay === undefined
          ? '–'
          : `${verdict(throughput === undefined ? undefined : throughput >= 2.5)}; ${verdict(vsRelay === undefined ? undefined : vsRelay > 1)}`,
    });
    rows.push({
      scenario: '',
      measure: 'p50 ms',
      cells: columns.map((impl) => cell(r, impl, (v) => ms(v.latencyMs.p50))),
      comparison: withNats(
        `${times(ratio(ours?.latencyMs.p50, peer?.latencyMs.p50))} ocpp-ws-io`,
        nats && `${times(ratio(nats.latencyMs.p50, peer?.latencyMs.p50))} ocpp-ws-io, ${times(ratio(nats.latencyMs.p50, ours?.latencyMs.p50))} ours`,
      ),
      goal: '',
      met: '',
    });
    rows.push({
      scenario: '',
      measure: 'p99 ms',
      cells: columns.map((impl) => cell(r, impl, (v) => ms(v.latencyMs.p99))),
      comparison: withNats(
        `${times(p99)} ocpp-ws-io, ${times(ratio(ours?.latencyMs.p99, relay?.latencyMs.p99))} naive relay`,
        nats && `${times(ratio(nats.latencyMs.p99, peer?.latencyMs.p99))} ocpp-ws-io, ${times(ratio(nats.latencyMs.p99, ours?.latencyMs.p99))} ours`,
      ),
      goal: '≤ 0.5× ocpp-ws-io',
      met: verdict(p99 === undefined ? undefined : p99 <= 0.5),
    });
    // CPU per call barely moves with other work on the machine: the comparison to trust on a busy one.
    const cpu = (v: CrossNodeResult | undefined): number | undefined => {
      const used = v?.cpuUsPerCall;
      return used && used.caller !== null && used.owner !== null && used.redis !== null ? used.caller + used.owner + used.redis : undefined;
    };
    const cpuCell = (v: CrossNodeResult): string => {
      const used = v.cpuUsPerCall;
      return cpu(v) === undefined || !used ? '–' : `${int(cpu(v)!)} (${int(used.caller!)}+${int(used.owner!)}+${int(used.redis!)})`;
    };
    rows.push({
      scenario: '',
      measure: 'CPU µs per call (caller+owner+Redis)',
      cells: columns.map((impl) => cell(r, impl, cpuCell)),
      comparison: `${times(ratio(cpu(ours), cpu(peer)))} ocpp-ws-io, ${times(ratio(cpu(ours), cpu(relay)))} naive relay`,
      goal: '',
      met: '',
    });
  }

  // inbound
  {
    const r = results.inbound;
    const ours = ok(r.ours);
    const vsRpc = ratio(ours?.callsPerSecond, ok(r['ocpp-rpc'])?.callsPerSecond);
    const vsWs = ratio(ours?.callsPerSecond, ok(r.ws)?.callsPerSecond);
    rows.push({
      scenario: 'inbound: 200 stations send Heartbeat back to back, strict validation',
      measure: 'calls/s',
      cells: columns.map((impl) => cell(r, impl, (v) => int(v.callsPerSecond))),
      comparison: `${times(vsRpc)} ocpp-rpc, ${times(vsWs)} ws`,
      goal: '≥ 1.5× ocpp-rpc, ≥ 0.8× ws',
      met: verdict(vsRpc === undefined || vsWs === undefined ? undefined : vsRpc >= 1.5 && vsWs >= 0.8),
    });
    rows.push({
      scenario: '',
      measure: 'p99 ms',
      cells: columns.map((impl) => cell(r, impl, (v) => ms(v.latencyMs.p99))),
      comparison: `${times(ratio(ours?.latencyMs.p99, ok(r['ocpp-rpc'])?.latencyMs.p99))} ocpp-rpc`,
      goal: '',
      met: '',
    });
    if (r['ours (default rateLimit)'] !== undefined) {
      rows.push({
        scenario: 'inbound, ours with its default rateLimit (burst 100, 50/s per station)',
        measure: 'calls/s',
        cells: [cell(r, 'ours (default rateLimit)', (v) => int(v.callsPerSecond)), ...columns.slice(1).map(() => '–')],
        comparison: '',
        goal: 'report',
        met: '',
      });
    }
  }

  // memory, 2.0.1 stations offering permessage-deflate
  const deflateRows = (): void => {
    const r = results.memoryDeflate;
    if (Object.keys(r).length === 0) return;
    const ours = ok(r.ours);
    const rpc = ok(r['ocpp-rpc']);
    const connections = ours?.connections ?? rpc?.connections ?? Math.round(10_000 * scale);
    rows.push({
      scenario: `memory: ${k(connections)} idle 2.0.1 stations offering permessage-deflate (only ours accepts it by default)`,
      measure: 'RSS KB/conn',
      cells: columns.map((impl) => cell(r, impl, (v) => v.rssPerConnectionKB.toFixed(1))),
      comparison: `${times(ratio(ours?.rssPerConnectionKB, rpc?.rssPerConnectionKB))} ocpp-rpc`,
      goal: 'report',
      met: '',
    });
  };

  // memory
  {
    const r = results.memory;
    const ours = ok(r.ours);
    const rpc = ok(r['ocpp-rpc']);
    const connections = ours?.connections ?? rpc?.connections ?? Math.round(10_000 * scale);
    const rss = ratio(ours?.rssPerConnectionKB, rpc?.rssPerConnectionKB);
    const heap = ratio(ours?.heapPerConnectionKB, rpc?.heapPerConnectionKB);
    rows.push({
      scenario: `memory: ${k(connections)} idle stations on one node`,
      measure: 'RSS KB/conn',
      cells: columns.map((impl) => cell(r, impl, (v) => v.rssPerConnectionKB.toFixed(1))),
      comparison: `${times(rss)} ocpp-rpc`,
      goal: '≤ 0.6× ocpp-rpc',
      met: verdict(rss === undefined ? undefined : rss <= 0.6),
    });
    rows.push({
      scenario: '',
      measure: 'heap KB/conn',
      cells: columns.map((impl) => cell(r, impl, (v) => v.heapPerConnectionKB.toFixed(1))),
      comparison: `${times(heap)} ocpp-rpc`,
      goal: '≤ 0.6× ocpp-rpc',
      met: verdict(heap === undefined ? undefined : heap <= 0.6),
    });
    deflateRows();
  }

  // cluster
  {
    const r = results.cluster;
    const ours = ok(r.ours);
    const peer = ok(r['ocpp-ws-io']);
    const nats = ok(r['ours-nats']);
    const stations = ours?.stations ?? nats?.stations ?? peer?.stations ?? Math.round(10_000 * scale);
    rows.push({
      scenario: `reconnect storm: ${k(stations)} stations connect at once to a 2-node cluster`,
      measure: 's until all in presence (all sockets open at)',
      cells: columns.map((impl) =>
        cell(r, impl, (v) => {
          const connected = v.storm.allConnectedMs === null ? '' : ` (${(v.storm.allConnectedMs / 1000).toFixed(2)})`;
          return `${(v.storm.presenceWholeMs / 1000).toFixed(2)}${connected}`;
        }),
      ),
      comparison: withNats(
        `${times(ratio(ours?.storm.presenceWholeMs, peer?.storm.presenceWholeMs))} ocpp-ws-io, ` +
          `${times(ratio(ours?.storm.presenceWholeMs, ok(r.ws)?.storm.presenceWholeMs))} ws`,
        nats && `${times(ratio(nats.storm.presenceWholeMs, peer?.storm.presenceWholeMs))} ocpp-ws-io, ${times(ratio(nats.storm.presenceWholeMs, ours?.storm.presenceWholeMs))} ours`,
      ),
      goal: '< 5 s',
      met: verdict(ours === undefined ? undefined : ours.storm.presenceWholeMs < 5_000),
    });
    const restart = (v: ClusterResult): number | null | undefined =>
      v.redisRestart === undefined || isError(v.redisRestart) ? undefined : v.redisRestart.presenceWholeMs;
    const oursRestart = ours ? restart(ours) : undefined;
    rows.push({
      scenario: `Redis (for ours-nats: nats-server) killed and restarted empty under ${k(stations)} connections`,
      measure: 'ms until presence whole (after Redis is back)',
      cells: columns.map((impl) =>
        cell(r, impl, (v) => {
          if (v.redisRestart === undefined) return '–';
          if (isError(v.redisRestart)) return `failed: ${v.redisRestart.error.slice(0, 60)}`;
          const whole = v.redisRestart.presenceWholeMs === null ? 'never (60 s)' : ms(v.redisRestart.presenceWholeMs);
          const call = v.redisRestart.firstRemoteCallMs === null ? 'never' : ms(v.redisRestart.firstRemoteCallMs);
          return `${whole} (cross-node call OK after ${call})`;
        }),
      ),
      comparison: '',
      goal: '< 1,000 ms',
      met: verdict(oursRestart === undefined ? undefined : oursRestart !== null && oursRestart < 1_000),
    });
    const batch = (v: ClusterResult): string => {
      if (v.broadcastBatch === undefined) return '–';
      if (isError(v.broadcastBatch)) return `failed: ${v.broadcastBatch.error.slice(0, 60)}`;
      const b = v.broadcastBatch;
      const delivered = b.deliveredMs === null ? `${int(b.delivered)} delivered` : `all delivered in ${ms(b.deliveredMs)} ms`;
      return `${ms(b.resolvedMs)} ms, ${int(b.fulfilled)}/${int(v.stations)} outcomes (${delivered})`;
    };
    const oursBatch = ours?.broadcastBatch && !isError(ours.broadcastBatch) ? ours.broadcastBatch : undefined;
    const peerBatch = peer?.broadcastBatch && !isError(peer.broadcastBatch) ? peer.broadcastBatch : undefined;
    rows.push({
      scenario: `broadcastBatch to ${k(stations)} identities over 2 nodes`,
      measure: 'time until every outcome is back',
      cells: columns.map((impl) => cell(r, impl, batch)),
      comparison: '',
      goal: 'report; beat ocpp-ws-io (which returns none)',
      met: verdict(
        oursBatch === undefined
          ? undefined
          : oursBatch.fulfilled === stations && (peerBatch === undefined || peerBatch.fulfilled < stations || oursBatch.resolvedMs < peerBatch.resolvedMs),
      ),
    });
  }

  const header = ['scenario', 'measure', ...columns, 'ours vs peer', 'goal', 'goal met'];
  const lines = [`| ${header.join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`];
  for (const row of rows) {
    lines.push(`| ${[row.scenario, row.measure, ...row.cells, row.comparison, row.goal, row.met].join(' | ')} |`);
  }
  const text = lines.join('\n');
  return text.includes(' †')
    ? `${text}\n\n† other processes used more than ${NOISY_PERCENT}% of the CPU while this was measured (three tries); read it as pessimistic.`
    : text;
}

/** The main table as bar panels (bench/harness/charts.ts): one panel per measure that has results. */
export function mainPanels(results: BenchResults): BarPanel[] {
  const panels: BarPanel[] = [];
  const panel = <T>(title: string, unit: string, better: BarPanel['better'], byImpl: ByImpl<T>, value: (result: T) => number | undefined): void => {
    const bars: Bar[] = [];
    for (const impl of IMPLS) {
      const result = ok(byImpl[impl]);
      const measured = result === undefined ? undefined : value(result);
      if (measured !== undefined && Number.isFinite(measured)) bars.push({ name: impl, value: measured });
    }
    if (bars.length > 0) panels.push({ title, unit, better, bars });
  };
  panel('cross-node DataTransfer', 'calls/s', 'higher', results.crossNode, (v) => v.callsPerSecond);
  panel('cross-node DataTransfer', 'p99 ms', 'lower', results.crossNode, (v) => v.latencyMs.p99);
  panel('inbound Heartbeat, strict', 'calls/s', 'higher', results.inbound, (v) => v.callsPerSecond);
  panel('idle connections', 'RSS KB per connection', 'lower', results.memory, (v) => v.rssPerConnectionKB);
  panel('reconnect storm, 2 nodes', 's until all in presence', 'lower', results.cluster, (v) => v.storm.presenceWholeMs / 1000);
  panel('broadcastBatch over 2 nodes', 'ms until every outcome', 'lower', results.cluster, (v) =>
    v.broadcastBatch === undefined || isError(v.broadcastBatch) ? undefined : v.broadcastBatch.resolvedMs,
  );
  return panels;
}
