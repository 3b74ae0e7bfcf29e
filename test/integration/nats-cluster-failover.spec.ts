import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { WebSocket } from 'ws';
import type { ClusterLogger } from '../../lib/cluster/logger.js';
import { SILENT_LOGGER } from '../../lib/cluster/logger.js';
import { NatsTransport } from '../../lib/nats/nats-transport.js';
import { ClusterUnavailableError, LeaseLostError, OcppTimeoutError } from '../../lib/protocol/errors.js';
import { openCharger, startClusterNodeOn, type RunningClusterNode } from '../support/cluster-node.js';
import { startNatsCluster, stopAllNatsServers, type NatsCluster, type NatsServer } from '../support/nats-server.js';
import { sleep, waitFor, withTimeout } from '../support/wait.js';

/**
 * Two cluster nodes on a 3-server NATS JetStream cluster (every stream and bucket with 3
 * replicas), each connected to a different server and knowing all three; charge points on both
 * and calls across nodes all the time. One server is killed with SIGKILL mid-traffic: the one
 * holding the most (JetStream meta leader, stream leaders, node connections). Every call is
 * answered once and truthfully (the charger's own answer, or a typed timeout / unavailable, never
 * NotConnected for a charger that stays connected), nothing reaches a charger after its caller was
 * told the call failed, calls work again after the failover, presence stays whole; and all that
 * still holds after the server restarts with its store and rejoins.
 */

const LOGGER: ClusterLogger = process.env.OCPP_NATS_DEBUG ? { log: console.log, warn: console.warn, error: console.error, debug: console.log } : SILENT_LOGGER;
const PREFIX = 'failover';
const CHARGERS_PER_NODE = 3;
const CALL_TIMEOUT_MS = 3_000;
const CALL_EVERY_MS = 40;
/** A frame written before the caller's deadline may land in the charger's socket a moment after it (one clock, one process). */
const RECEIPT_TOLERANCE_MS = 100;
/** Generous: a JetStream leader election plus the clients' reconnect, with 2 cores shared. */
const FAILOVER_BOUND_MS = 60_000;

type Outcome = { kind: 'result'; result: Record<string, unknown> } | { kind: 'error'; error: Error };

interface CallRecord {
  tag: string;
  from: string;
  identity: string;
  sentAt: number;
  settledAt: number | null;
  settlements: number;
  outcome: Outcome | null;
}

interface Charger {
  identity: string;
  owner: string;
  socket: WebSocket;
  receipts: Array<{ tag: string; at: number }>;
  closedAt: number | null;
}

describe('the NATS transport on a 3-server JetStream cluster when one server is killed during traffic', () => {
  let cluster: NatsCluster;
  const nodes: Array<RunningClusterNode<NatsTransport>> = [];
  const chargers: Charger[] = [];
  const calls: CallRecord[] = [];
  const inFlight = new Set<Promise<void>>();
  let traffic: NodeJS.Timeout | null = null;
  let seq = 0;

  async function startNode(nodeId: string, servers: string[]): Promise<RunningClusterNode<NatsTransport>> {
    const adapter = new NatsTransport({
      servers,
      // Each node's first server is another one; the client moves to the next in this order.
      connectionOptions: { name: `ocpp-cluster:${nodeId}`, noRandomize: true },
      prefix: PREFIX,
      replicas: 3,
      takeoverIntervalMs: 500,
      logger: LOGGER,
    });
    const node = await startClusterNodeOn(adapter, nodeId, { callTimeoutMs: CALL_TIMEOUT_MS });
    nodes.push(node);
    return node;
  }

  async function connectCharger(node: RunningClusterNode<NatsTransport>, identity: string): Promise<void> {
    const socket = await openCharger(node.urlOf(identity));
    const charger: Charger = { identity, owner: node.nodeId, socket, receipts: [], closedAt: null };
    socket.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as [number, string, string, { data?: string }];
      if (frame[0] !== 2) return;
      charger.receipts.push({ tag: String(frame[3]?.data), at: Date.now() });
      socket.send(JSON.stringify([3, frame[1], { status: 'Accepted', data: frame[3]?.data }]));
    });
    socket.once('close', () => (charger.closedAt = Date.now()));
    chargers.push(charger);
  }

  /** One DataTransfer from `from` to a charger on the other node; its tag travels in `data` and comes back in the answer. */
  function call(from: RunningClusterNode<NatsTransport>): Promise<void> {
    const remote = chargers.filter((charger) => charger.owner !== from.nodeId);
    const target = remote[seq % remote.length];
    const record: CallRecord = { tag: `t${++seq}`, from: from.nodeId, identity: target.identity, sentAt: Date.now(), settledAt: null, settlements: 0, outcome: null };
    calls.push(record);
    const settle = (outcome: Outcome): void => {
      record.settlements++;
      record.settledAt ??= Date.now();
      record.outcome ??= outcome;
    };
    const work = from.node
      .sendToClient(target.identity, 'ocpp1.6', 'DataTransfer', { vendorId: 'failover', data: record.tag }, { timeoutMs: CALL_TIMEOUT_MS })
      .then(
        (result) => settle({ kind: 'result', result: result as Record<string, unknown> }),
        (error: Error) => settle({ kind: 'error', error }),
      );
    inFlight.add(work);
    void work.finally(() => inFlight.delete(work));
    return work;
  }

  function startTraffic(): void {
    let turn = 0;
    traffic = setInterval(() => void call(nodes[turn++ % nodes.length]), CALL_EVERY_MS);
  }

  async function stopTraffic(): Promise<void> {
    if (traffic) clearInterval(traffic);
    traffic = null;
    await withTimeout(Promise.all(inFlight), CALL_TIMEOUT_MS + 30_000, 'every call in flight to be answered');
  }

  /** A call from each node to the other's chargers, sent after `since`, came back with the charger's answer. */
  function succeededSince(since: number): boolean {
    return nodes.every((node) => calls.some((record) => record.from === node.nodeId && record.sentAt > since && record.outcome?.kind === 'result'));
  }

  async function presenceIsWhole(): Promise<boolean> {
    for (const node of nodes) {
      const listed = await node.node.listAll().catch(() => null);
      if (!listed) return false;
      const owners = new Map(listed.map((info) => [info.identity, info.nodeId]));
      if (!chargers.every((charger) => owners.get(charger.identity) === charger.owner)) return false;
    }
    return true;
  }

  /** The server holding the most: meta leader, leaders of the nodes' streams and the buckets, and the nodes' connections. */
  async function busiestServer(): Promise<{ server: NatsServer; roles: string[] }> {
    const roles = new Map<NatsServer, string[]>(cluster.servers.map((server) => [server, []]));
    const add = (server: NatsServer | null, role: string) => server && roles.get(server)!.push(role);
    add(await cluster.metaLeader(), 'JetStream meta leader');
    const names = nodes[0].adapter.names;
    const streams = [`KV_${names.presenceBucket}`, `KV_${names.nodesBucket}`, ...nodes.flatMap((node) => [names.inboxStream(node.nodeId), names.repliesStream(node.nodeId)])];
    for (const stream of streams) add(await cluster.streamLeader(stream), `leader of ${stream}`);
    for (const node of nodes) add(await cluster.serverOfClient(`ocpp-cluster:${node.nodeId}`), `connection of ${node.nodeId}`);
    const [server, held] = [...roles].sort(([, one], [, other]) => other.length - one.length)[0];
    return { server, roles: held };
  }

  function findings(): string[] {
    const problems: string[] = [];
    const byIdentity = new Map(chargers.map((charger) => [charger.identity, charger]));
    const receiptsOf = (tag: string): Array<{ identity: string; at: number }> =>
      chargers.flatMap((charger) => charger.receipts.filter((receipt) => receipt.tag === tag).map((receipt) => ({ identity: charger.identity, at: receipt.at })));
    for (const record of calls) {
      const what = `${record.tag} ${record.from} → ${record.identity}`;
      const receipts = receiptsOf(record.tag);
      if (record.settlements !== 1 || !record.outcome) problems.push(`${what}: answered ${record.settlements} times`);
      if (receipts.length > 1) problems.push(`${what}: delivered ${receipts.length} times`);
      if (receipts.some((receipt) => receipt.identity !== record.identity)) problems.push(`${what}: reached ${receipts.map((r) => r.identity).join(',')}`);
      const outcome = record.outcome;
      if (!outcome) continue;
      if (outcome.kind === 'result') {
        if (outcome.result.data !== record.tag || receipts.length !== 1) problems.push(`${what}: result ${JSON.stringify(outcome.result)} is not the charger's answer to it`);
        continue;
      }
      const { error } = outcome;
      const typed = error instanceof OcppTimeoutError || error instanceof ClusterUnavailableError || error instanceof LeaseLostError;
      if (!typed) problems.push(`${what}: ${error.constructor.name} (${error.message}) for a charger that was connected`);
      if (error instanceof OcppTimeoutError && !error.sent && receipts.length > 0) problems.push(`${what}: told "never sent" but delivered`);
      const late = receipts.filter((receipt) => receipt.at > record.settledAt! + RECEIPT_TOLERANCE_MS);
      if (late.length > 0) problems.push(`${what}: delivered ${late[0].at - record.settledAt!} ms after its caller was told ${error.constructor.name}`);
    }
    for (const charger of chargers) if (charger.closedAt !== null) problems.push(`${charger.identity} on ${charger.owner} was disconnected`);
    if (byIdentity.size !== chargers.length) problems.push('duplicate charger identities');
    return problems;
  }

  beforeAll(async () => {
    cluster = await startNatsCluster();
    const urls = cluster.urls;
    const a = await startNode('fo-a', urls);
    const b = await startNode('fo-b', [...urls.slice(1), urls[0]]);
    for (let i = 0; i < CHARGERS_PER_NODE; i++) {
      await connectCharger(a, `FO-A${i}`);
      await connectCharger(b, `FO-B${i}`);
    }
    await waitFor('both nodes to see every charger', presenceIsWhole);
  }, 90_000);

  afterAll(async () => {
    if (traffic) clearInterval(traffic);
    for (const charger of chargers) charger.socket.terminate();
    await Promise.all(nodes.map((node) => node.stop().catch(() => undefined)));
    await stopAllNatsServers();
  }, 60_000);

  it('answers every call truthfully through the failover and after the server rejoins', async () => {
    const [a, b] = nodes;
    const servers = [a, b].map((node) => node.adapter.connection!.getServer());
    expect(servers[0]).not.toBe(servers[1]);

    startTraffic();
    await waitFor('calls to flow both ways', () => succeededSince(0));
    await sleep(1_500);

    const { server: victim, roles } = await busiestServer();
    console.log(`killing nats-server ${victim.port} (-9); it was: ${roles.join('; ') || 'nothing in particular'}`);
    await victim.kill9();
    const killedAt = Date.now();
    await waitFor('calls to succeed both ways after the failover', () => succeededSince(killedAt), { timeoutMs: FAILOVER_BOUND_MS, intervalMs: 200 });
    const failoverMs = Date.now() - killedAt;
    await waitFor('presence to list every charger on both nodes after the failover', presenceIsWhole, { timeoutMs: FAILOVER_BOUND_MS, intervalMs: 200 });
    await sleep(3_000);

    await victim.start();
    await cluster.waitReady(FAILOVER_BOUND_MS);
    const rejoinedAt = Date.now();
    await waitFor('calls to succeed both ways after the server rejoined', () => succeededSince(rejoinedAt), { timeoutMs: FAILOVER_BOUND_MS, intervalMs: 200 });
    await sleep(3_000);
    await stopTraffic();
    await waitFor('presence to list every charger on both nodes after the rejoin', presenceIsWhole, { timeoutMs: FAILOVER_BOUND_MS, intervalMs: 200 });

    const failed = calls.filter((record) => record.outcome?.kind === 'error');
    const kinds = [...new Set(failed.map((record) => (record.outcome as { error: Error }).error.constructor.name))];
    console.log(`${calls.length} calls, ${failed.length} failed (${kinds.join(', ') || 'none'}); calls worked again ${failoverMs} ms after the kill`);
    expect(findings()).toEqual([]);
    // Every node is healthy again, its lease held, nothing taken over.
    for (const node of nodes) {
      await waitFor(`${node.nodeId} healthy`, () => node.adapter.isHealthy(), { timeoutMs: FAILOVER_BOUND_MS });
      expect(node.node.liveness()).toEqual({ live: true });
    }
  }, 240_000);
});
