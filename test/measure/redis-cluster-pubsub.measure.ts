import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { BroadcastEnvelope } from '../../lib/cluster/envelope.js';
import { Broadcaster } from '../../lib/redis/broadcaster.js';
import { ClusterDriver } from '../../lib/redis/cluster-driver.js';
import { RedisAdapter } from '../../lib/redis/redis-adapter.js';
import { keySlot } from '../../lib/redis/redis-keys.js';
import { MemoryLogger } from '../support/redis-fixtures.js';
import { startRedisCluster, stopAllRedisServers, type RedisClusterHandle, type RedisServer } from '../support/redis-server.js';
import { sleep, waitFor } from '../support/wait.js';

type Mode = 'classic' | 'sharded';

/**
 * Broadcasts on Redis Cluster over classic PUBLISH (the default) and over sharded pub/sub
 * (`shardedPubSub: true`): the measurement behind the choice (not part of `npm test`):
 *
 *   npm run measure:pubsub
 *
 * It prints msgs/s and latency for both modes, and what each loses while the broadcast
 * channel's slot migrates and while the master serving it (or, classic, the node a
 * subscriber listens on) is killed.
 */
describe('broadcast pub/sub modes on Redis Cluster (measurement)', () => {
  let cluster: RedisClusterHandle;
  const drivers: ClusterDriver[] = [];
  const adapters: RedisAdapter[] = [];
  const logger = new MemoryLogger();

  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3, replicas: 1 });
  }, 60_000);

  afterAll(async () => {
    await Promise.all(adapters.map((adapter) => adapter.disconnect()));
    await Promise.all(drivers.map((driver) => driver.close()));
    await cluster?.stop();
    await stopAllRedisServers();
  });

  const measure = it;

  measure('measures throughput, latency and losses of both modes', async () => {
    const lines: string[] = [];
    for (const mode of ['classic', 'sharded'] as Mode[]) {
      lines.push(await throughput(mode, 20_000, 100));
      lines.push(await throughput(mode, 2_000, 1));
    }
    for (const mode of ['classic', 'sharded'] as Mode[]) {
      lines.push(await disruption(mode, 'slot migration', async (channel) => {
        const slot = keySlot(channel);
        const target = masters().find((master) => master !== cluster.masterOf(slot))!;
        await cluster.migrateSlots([slot], target);
      }));
      lines.push(await disruption(mode, "kill of the channel's master", async (channel) => {
        const victim = cluster.masterOf(keySlot(channel));
        await cluster.killMaster(victim);
        await cluster.restartNode(victim);
      }));
      if (mode === 'classic') {
        lines.push(await disruption(mode, 'kill of the node a subscriber listens on', async (_channel, names) => {
          const victim = cluster.running.find((server) => server.cli('CLIENT', 'LIST').includes(`${names[0]}:subscriber`))!;
          if (cluster.masters().includes(victim)) await cluster.killMaster(victim);
          else await victim.kill9();
          await cluster.restartNode(victim);
        }));
      }
    }
    console.log(`pub/sub on a 3-master + 3-replica cluster (${new Date().toISOString()})\n${lines.join('\n')}`);
  }, 300_000);

  function masters(): RedisServer[] {
    return cluster.masters();
  }

  function driver(mode: Mode, name: string): ClusterDriver {
    const made = new ClusterDriver({ nodes: cluster.nodes, shardedPubSub: mode === 'sharded', redisOptions: { connectionName: name }, logger });
    drivers.push(made);
    return made;
  }

  function broadcaster(of: ClusterDriver): Broadcaster {
    return new Broadcaster({ subscriber: () => of.subscriber, mode: () => of.pubSubMode, logger });
  }

  function envelope(n: number): BroadcastEnvelope {
    return {
      kind: 'broadcast',
      id: randomUUID(),
      origin: 'measure',
      action: 'DataTransfer',
      payload: { vendorId: 'measure', data: 'x'.repeat(160), n, t: performance.now() },
      deadline: Date.now() + 60_000,
    };
  }

  /** One publisher, three subscribers (each its own driver, as three nodes would be). */
  async function setUp(mode: Mode, channel: string) {
    const publisher = driver(mode, `${channel}-pub`);
    const sender = broadcaster(publisher);
    const names = [1, 2, 3].map((i) => `${channel}-sub${i}`);
    const received = names.map(() => [] as Array<{ n: number; latency: number; at: number }>);
    const listeners = names.map((name) => broadcaster(driver(mode, name)));
    await Promise.all(
      listeners.map((listener, index) =>
        listener.subscribe(channel, (message) => {
          const payload = (message as BroadcastEnvelope).payload as { n: number; t: number };
          const now = performance.now();
          received[index].push({ n: payload.n, latency: now - payload.t, at: now });
        }),
      ),
    );
    await publisher.writer.ping();
    return { publisher, sender, names, received };
  }

  async function throughput(mode: Mode, total: number, window: number): Promise<string> {
    const channel = `measure:${mode}:${window}`;
    const { publisher, sender, received } = await setUp(mode, channel);
    const started = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: window }, async () => {
        while (next < total) await sender.publish(publisher.writer, channel, envelope(next++));
      }),
    );
    await waitFor('every message delivered', () => received.every((list) => list.length === total), { timeoutMs: 60_000 });
    const seconds = (Math.max(...received.map((list) => list[list.length - 1].at)) - started) / 1000;
    const latencies = received.flat().map((entry) => entry.latency).sort((a, b) => a - b);
    const quantile = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))].toFixed(2);
    return (
      `${mode.padEnd(7)} ${window === 1 ? 'one at a time' : `${window} in flight`}: ${total} msgs to 3 subscribers, ` +
      `${Math.round(total / seconds)} msgs/s (${Math.round((3 * total) / seconds)} deliveries/s), latency p50 ${quantile(0.5)} ms, p99 ${quantile(0.99)} ms`
    );
  }

  async function disruption(mode: Mode, what: string, disturb: (channel: string, subscribers: string[]) => Promise<void>): Promise<string> {
    const channel = `measure:${mode}:${what.replace(/\W+/g, '-')}`;
    const { publisher, sender, names, received } = await setUp(mode, channel);
    let sent = 0;
    let failed = 0;
    let running = true;
    const publishing = (async () => {
      while (running) {
        try {
          await sender.publish(publisher.writer, channel, envelope(sent));
        } catch {
          failed++;
        }
        sent++;
        await sleep(5);
      }
    })();
    await sleep(500);
    const from = performance.now();
    await disturb(channel, names);
    const mark = sent;
    await waitFor('every subscriber to hear new messages', () => received.every((list) => list.some((entry) => entry.n > mark + 20)), {
      timeoutMs: 30_000,
    });
    running = false;
    await publishing;
    await sleep(500);
    const lost = received.map((list) => sent - new Set(list.map((entry) => entry.n)).size);
    const gaps = received.map((list) => {
      let gap = 0;
      for (let i = 1; i < list.length; i++) if (list[i].at > from) gap = Math.max(gap, list[i].at - list[i - 1].at);
      return Math.round(gap);
    });
    return `${mode.padEnd(7)} ${what}: ${sent} published (${failed} publish errors), lost per subscriber ${lost.join('/')}, longest silence ${gaps.join('/')} ms`;
  }
});
