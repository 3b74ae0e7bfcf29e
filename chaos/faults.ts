import type { NatsUnderTest } from './nats-under-test.js';
import { cliAsync } from './redis-under-test.js';
import type { RedisUnderTest } from './redis-under-test.js';
import type { NodeProcess } from './node-process.js';
import type { FaultRecord, FaultType, NodeOutage, RunRecords } from './records.js';
import type { Rng } from './rng.js';

export interface FaultEnvironment {
  nodes: NodeProcess[];
  /** The transport under test: exactly one of the two. */
  redis: RedisUnderTest | null;
  nats: NatsUnderTest | null;
  records: RunRecords;
  rng: Rng;
  ttlMs: number;
  /** How long a SIGTERM drain may take before it counts as a slow shutdown. */
  shutdownBoundMs: number;
  /** How long `busy-node` keeps a node's main thread busy (the nodes' STALL_MS). */
  busyMs: number;
  /** Starts a stopped node again with the same id (records failed starts). */
  restart(node: NodeProcess): Promise<void>;
  /** Queues calls on a node's charge points just before it is hit. */
  loadNode(nodeId: string): Promise<void>;
  log(message: string): void;
}

export const STANDALONE_FAULTS: FaultType[] = [
  'kill9-node',
  'sigstop-node',
  'busy-node',
  'sigterm-drain',
  'redis-restart',
  'client-kill',
  'client-pause',
  'debug-sleep',
  'maxmemory',
];

export const CLUSTER_FAULTS: FaultType[] = [
  'kill9-node',
  'sigstop-node',
  'busy-node',
  'sigterm-drain',
  'master-kill',
  'client-kill',
  'client-pause',
  'debug-sleep',
  'maxmemory',
];

/** One nats-server with JetStream: the nodes' faults, the server restarted with its store, the server stalled. */
export const NATS_SINGLE_FAULTS: FaultType[] = ['kill9-node', 'sigstop-node', 'busy-node', 'sigterm-drain', 'nats-restart', 'nats-sigstop'];

/** A 3-server JetStream cluster (3 replicas): the nodes' faults, one server killed and restarted later, one server stalled. */
export const NATS_CLUSTER_FAULTS: FaultType[] = ['kill9-node', 'sigstop-node', 'busy-node', 'sigterm-drain', 'nats-server-kill', 'nats-sigstop'];

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Injects one fault after another (each undone before the next starts, so every call belongs to
 * at most one fault) until `stopAt`, cycling through the types in a seeded order.
 */
export async function runFaults(env: FaultEnvironment, types: FaultType[], stopAt: number): Promise<void> {
  let rotation: FaultType[] = [];
  await sleep(env.rng.int(2_000, 3_000));
  while (Date.now() < stopAt) {
    if (rotation.length === 0) rotation = env.rng.shuffle(types);
    const type = rotation.shift()!;
    try {
      await inject(env, type);
    } catch (error) {
      env.log(`fault ${type} could not be injected: ${(error as Error).message}`);
    }
    await sleep(env.rng.int(2_000, 4_000));
  }
}

async function inject(env: FaultEnvironment, type: FaultType): Promise<void> {
  const { rng, ttlMs } = env;
  const begin = (target: string, detail: string): FaultRecord => {
    const fault: FaultRecord = { type, target, startedAt: Date.now(), recoveredAt: null, detail };
    env.records.faults.push(fault);
    env.log(`fault ${type} on ${target}: ${detail}`);
    return fault;
  };
  const end = (fault: FaultRecord) => {
    fault.recoveredAt = Date.now();
    env.log(`fault ${type} on ${fault.target} undone after ${fault.recoveredAt - fault.startedAt} ms`);
  };
  const outage = (node: NodeProcess, kind: NodeOutage['kind']): NodeOutage => {
    const record: NodeOutage = { node: node.nodeId, kind, from: Date.now(), to: null };
    env.records.outages.push(record);
    return record;
  };
  const upNode = async (): Promise<NodeProcess> => {
    const up = env.nodes.filter((node) => node.state === 'up');
    if (up.length === 0) throw new Error('no node is up');
    const node = rng.pick(up);
    await env.loadNode(node.nodeId);
    return node;
  };

  const redis = (): RedisUnderTest => {
    if (!env.redis) throw new Error(`${type} needs Redis`);
    return env.redis;
  };
  const nats = (): NatsUnderTest => {
    if (!env.nats) throw new Error(`${type} needs NATS`);
    return env.nats;
  };

  switch (type) {
    case 'kill9-node': {
      const node = await upNode();
      const downMs = rng.int(300, 2_000);
      const fault = begin(node.nodeId, `SIGKILL, restart with the same id after ${downMs} ms`);
      const killed = outage(node, 'killed');
      await node.kill9();
      await sleep(downMs);
      await env.restart(node);
      killed.to = Date.now();
      return end(fault);
    }
    case 'sigstop-node': {
      const node = await upNode();
      const frozenMs = ttlMs + rng.int(1_000, 3_000);
      const fault = begin(node.nodeId, `SIGSTOP for ${frozenMs} ms (TTL ${ttlMs} ms), then SIGCONT`);
      const frozen = outage(node, 'frozen');
      node.freeze();
      await sleep(frozenMs);
      node.thaw();
      frozen.to = Date.now();
      return end(fault);
    }
    case 'busy-node': {
      // Not a death: the node's lease keeper thread beats for it, so nobody takes it over, and its
      // chargers must not be called not connected; what it read late must still meet every deadline.
      const node = await upNode();
      const fault = begin(node.nodeId, `main thread busy for ${env.busyMs} ms (SIGUSR2; TTL ${ttlMs} ms)`);
      const busy = outage(node, 'busy');
      node.stallMainThread();
      await sleep(env.busyMs);
      busy.to = Date.now();
      return end(fault);
    }
    case 'sigterm-drain': {
      const node = await upNode();
      const fault = begin(node.nodeId, 'SIGTERM (drain), restart with the same id');
      const stopping = outage(node, 'stopping');
      const started = Date.now();
      const exited = await node.terminate(env.shutdownBoundMs);
      if (!exited) {
        env.records.incidents.push({ kind: 'slow-shutdown', at: started, detail: `${node.nodeId} did not exit within ${env.shutdownBoundMs} ms of SIGTERM (SIGKILLed)` });
      }
      await sleep(rng.int(200, 1_000));
      await env.restart(node);
      stopping.to = Date.now();
      return end(fault);
    }
    case 'redis-restart': {
      const server = redis().standalone!;
      const fault = begin(`redis:${server.port}`, 'stop, start empty (no persistence)');
      await server.stop();
      await sleep(rng.int(300, 1_500));
      await server.start();
      return end(fault);
    }
    case 'client-kill': {
      const servers = redis().running();
      const fault = begin(servers.map((s) => `redis:${s.port}`).join(','), 'CLIENT KILL TYPE normal');
      const answers = await Promise.all(servers.map((server) => cliAsync(server.port, 'CLIENT', 'KILL', 'TYPE', 'normal')));
      fault.detail += ` (killed ${answers.join('+')})`;
      return end(fault);
    }
    case 'client-pause': {
      const pauseMs = ttlMs + rng.int(1_000, 2_500);
      const masters = await redis().masters();
      const fault = begin(masters.map((s) => `redis:${s.port}`).join(','), `CLIENT PAUSE ${pauseMs} ALL (TTL ${ttlMs} ms)`);
      await Promise.all(masters.map((server) => cliAsync(server.port, 'CLIENT', 'PAUSE', String(pauseMs), 'ALL')));
      await sleep(pauseMs);
      return end(fault);
    }
    case 'debug-sleep': {
      const sleepMs = ttlMs + rng.int(1_000, 2_500);
      const server = rng.pick(await redis().masters());
      const fault = begin(`redis:${server.port}`, `DEBUG SLEEP ${(sleepMs / 1000).toFixed(1)} (TTL ${ttlMs} ms)`);
      await cliAsync(server.port, 'DEBUG', 'SLEEP', (sleepMs / 1000).toFixed(1));
      await redis().waitHealthy();
      return end(fault);
    }
    case 'maxmemory': {
      const refuseMs = rng.int(3_000, 5_000);
      const masters = await redis().masters();
      const fault = begin(masters.map((s) => `redis:${s.port}`).join(','), `maxmemory = used memory, noeviction, for ${refuseMs} ms`);
      await Promise.all(
        masters.map(async (server) => {
          const used = /used_memory:(\d+)/.exec(await cliAsync(server.port, 'INFO', 'memory'))?.[1];
          if (!used) throw new Error(`no used_memory from ${server.port}`);
          await cliAsync(server.port, 'CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
          await cliAsync(server.port, 'CONFIG', 'SET', 'maxmemory', used);
        }),
      ).finally(async () => {
        await sleep(refuseMs);
        await Promise.all(redis().running().map((server) => cliAsync(server.port, 'CONFIG', 'SET', 'maxmemory', '0')));
      });
      return end(fault);
    }
    case 'nats-restart':
    case 'nats-server-kill': {
      // One server alone is down for a moment; one of a cluster long enough for elections to move its leaderships.
      const server = rng.pick(nats().servers.filter((candidate) => candidate.isRunning));
      const downMs = type === 'nats-restart' ? rng.int(300, 1_500) : rng.int(5_000, 8_000);
      const fault = begin(`nats:${server.port}`, `SIGKILL${type === 'nats-server-kill' ? ' one server of the cluster' : ''}, start it again with its store after ${downMs} ms`);
      await server.kill9();
      await sleep(downMs);
      await server.start();
      await nats().waitHealthy();
      return end(fault);
    }
    case 'nats-sigstop': {
      const server = rng.pick(nats().servers.filter((candidate) => candidate.isRunning));
      const stallMs = ttlMs + rng.int(1_000, 2_500);
      const fault = begin(`nats:${server.port}`, `SIGSTOP for ${stallMs} ms (TTL ${ttlMs} ms), then SIGCONT`);
      process.kill(server.pid!, 'SIGSTOP');
      await sleep(stallMs).finally(() => process.kill(server.pid!, 'SIGCONT'));
      await nats().waitHealthy();
      return end(fault);
    }
    case 'master-kill': {
      const candidates = await redis().masterWithReplica();
      if (candidates.length === 0) throw new Error('no master has a live replica');
      const master = rng.pick(candidates);
      const downMs = rng.int(5_000, 8_000);
      const fault = begin(`redis:${master.port}`, `SIGKILL a master, restart it after ${downMs} ms (it rejoins as a replica)`);
      await master.kill9();
      await sleep(downMs);
      await master.start();
      await redis().waitHealthy();
      return end(fault);
    }
  }
}
