import { ClusterUnavailableError } from '../../lib/protocol/errors.js';
import { randomUUID } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import type { ClusterMessage, CommandEnvelope, ReplyEnvelope } from '../../lib/cluster/envelope.js';
import type { PresenceRecord, PresenceRestore, PresenceSnapshotSource } from '../../lib/cluster/event-adapter.interface.js';
import type { ClusterLogger } from '../../lib/cluster/logger.js';
import { NodeLoss } from '../../lib/cluster/node-loss.js';
import { RedisAdapter, type RedisAdapterOptions } from '../../lib/redis/redis-adapter.js';
import { startRedisServer, stopAllRedisServers, type RedisServer } from './redis-server.js';

/** A logger that keeps lines for assertions and prints nothing. */
export class MemoryLogger implements ClusterLogger {
  readonly lines: string[] = [];
  log(message: string): void {
    this.lines.push(`log ${message}`);
  }
  warn(message: string): void {
    this.lines.push(`warn ${message}`);
  }
  error(message: string): void {
    this.lines.push(`error ${message}`);
  }
  debug(message: string): void {
    this.lines.push(`debug ${message}`);
  }
}

/** Stands in for a node's local registry: the sockets it believes it holds. */
export class FakeLocalRegistry implements PresenceSnapshotSource {
  readonly records = new Map<string, PresenceRecord>();
  constructor(readonly nodeId: string) {}
  set(record: Omit<PresenceRecord, 'nodeId'>): void {
    this.records.set(record.identity, { ...record, nodeId: this.nodeId });
  }
  delete(identity: string): void {
    this.records.delete(identity);
  }
  localPresence(): PresenceRecord[] {
    return [...this.records.values()];
  }
  /** What the transport's re-registrations told this node, in order. */
  readonly restores: PresenceRestore[] = [];
  /** As the node does: a socket registered late keeps the epoch it got (false: the socket is gone). */
  onPresenceRestored(restore: PresenceRestore): boolean {
    this.restores.push(restore);
    if (restore.kind !== 'registered') return true;
    const record = this.records.get(restore.identity);
    if (!record) return false;
    if (record.epoch === 0) record.epoch = restore.epoch;
    return true;
  }
}

/** Collects what a node's handlers receive. */
export class Inbox {
  readonly messages: ClusterMessage[] = [];
  /** When set, handlers wait on this before acknowledging. */
  gate: Promise<void> | null = null;
  /** When set, command handlers never finish (charge points that never answer); replies settle at once, as in the router. */
  holdCommands = false;
  readonly handler = (message: ClusterMessage): Promise<void> | void => {
    this.messages.push(message);
    if (this.holdCommands && message.kind === 'command') return new Promise<void>(() => undefined);
    return this.gate ?? undefined;
  };
  ofKind<K extends ClusterMessage['kind']>(kind: K): Array<Extract<ClusterMessage, { kind: K }>> {
    return this.messages.filter((message): message is Extract<ClusterMessage, { kind: K }> => message.kind === kind);
  }
}

/** A gate that handlers can wait on, opened by the test. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let open: () => void = () => undefined;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

export function command(origin: string, identity: string, overrides: Partial<CommandEnvelope> = {}): CommandEnvelope {
  return {
    kind: 'command',
    id: randomUUID(),
    origin,
    identity,
    action: 'DataTransfer',
    payload: { vendorId: 'test' },
    deadline: Date.now() + 60_000,
    ...overrides,
  };
}

/** Answers from `from` to calls `call-0`..`call-<count-1>`, as an owner sends them back. */
export function replies(from: string, count: number): ReplyEnvelope[] {
  return Array.from({ length: count }, (_, i) => ({
    kind: 'reply',
    id: `call-${i}`,
    from,
    identity: `CP${i}`,
    outcome: { status: 'result', payload: {} },
  }));
}

export interface TestNode {
  nodeId: string;
  adapter: RedisAdapter;
  registry: FakeLocalRegistry;
  inbox: Inbox;
  broadcasts: Inbox;
  logger: MemoryLogger;
  /** The cluster layer's node-loss handling over this adapter's primitives, as a node runs it. */
  nodeLoss: NodeLoss;
}

/**
 * Builds, connects and subscribes an adapter (inbox and broadcast) the way the router does.
 * `url` undefined: the options name the connection (`cluster`, `driver`, your clients).
 */
export async function startNode(
  url: string | undefined,
  nodeId: string,
  options: Partial<RedisAdapterOptions> = {},
  { subscribe = true }: { subscribe?: boolean } = {},
): Promise<TestNode> {
  const logger = new MemoryLogger();
  const adapter = new RedisAdapter({ url, nodeTtlMs: 1500, takeoverIntervalMs: 200, logger, ...options });
  const registry = new FakeLocalRegistry(nodeId);
  const inbox = new Inbox();
  const broadcasts = new Inbox();
  const nodeLoss = new NodeLoss({ nodeId, adapter, logger });
  try {
    await adapter.connect(nodeId, registry);
    nodeLoss.start();
    if (subscribe) {
      await adapter.subscribe('node', inbox.handler);
      await adapter.subscribe('allNodes', (message) => {
        // As the node's inbox does: a node that says it left is cleared at once.
        if (message.kind === 'nodeLeft' && message.nodeId !== nodeId) nodeLoss.poke();
        return broadcasts.handler(message);
      });
    }
  } catch (error) {
    void nodeLoss.stop();
    adapter.abort();
    throw error;
  }
  return { nodeId, adapter, registry, inbox, broadcasts, logger, nodeLoss };
}

/** Connects a node's socket the way the router does: claim, remember the epoch locally. */
export async function connectCharger(node: TestNode, identity: string): Promise<PresenceRecord> {
  const connectedAt = Date.now();
  const claim = await node.adapter.setPresence(identity, 'ocpp1.6', connectedAt);
  node.registry.set({ identity, epoch: claim.record.epoch, protocol: 'ocpp1.6', connectedAt });
  return claim.record;
}

/**
 * User-built connections whose reconnection the test controls: while `held`, a lost
 * connection stays down (retryStrategy → null); {@link HeldClients.release} reconnects them.
 */
export class HeldClients {
  held = false;
  readonly pubClient: Redis;
  readonly subClient: Redis;
  readonly blockingClient: Redis;

  constructor(port: number, name: string) {
    const options = (role: string, extra: RedisOptions = {}): RedisOptions => ({
      port,
      host: '127.0.0.1',
      connectionName: `${name}:${role}`,
      retryStrategy: () => (this.held ? null : 50),
      ...extra,
    });
    this.pubClient = new Redis(options('writer', { maxRetriesPerRequest: 3 }));
    this.subClient = new Redis(options('subscriber'));
    this.blockingClient = new Redis(options('blocking', { maxRetriesPerRequest: null }));
    for (const client of this.all()) client.on('error', () => undefined);
  }

  all(): Redis[] {
    return [this.pubClient, this.subClient, this.blockingClient];
  }

  async release(): Promise<void> {
    this.held = false;
    await Promise.all(
      this.all().map((client) => (client.status === 'end' || client.status === 'close' ? client.connect().catch(() => undefined) : undefined)),
    );
  }

  disconnect(): void {
    for (const client of this.all()) client.disconnect();
  }
}

/**
 * One redis-server per spec file, an admin client on it, and the test nodes a test started:
 * nodes are disconnected and the data flushed after each test, the server stopped after all.
 */
export function redisTestBed(defaults: (nodeId: string) => Parameters<typeof startNode>[2] = () => ({})) {
  const bed = {
    server: undefined as unknown as RedisServer,
    redis: undefined as unknown as Redis,
    nodes: [] as TestNode[],
    async node(nodeId: string, options: Parameters<typeof startNode>[2] = {}): Promise<TestNode> {
      const started = await startNode(bed.server.url, nodeId, { ...defaults(nodeId), ...options });
      bed.nodes.push(started);
      return started;
    },
  };
  beforeAll(async () => {
    bed.server = await startRedisServer();
    bed.redis = new Redis(bed.server.port);
    bed.redis.on('error', () => undefined);
  });
  afterEach(async () => {
    await Promise.all(bed.nodes.splice(0).map(async (node) => {
      await node.nodeLoss.stop();
      await node.adapter.disconnect();
    }));
    await bed.redis.flushall();
  });
  afterAll(async () => {
    bed.redis?.disconnect();
    await stopAllRedisServers();
  });
  return bed;
}

/** How many times Redis ran `command` so far, from an `INFO commandstats` reply (0 when never). */
export function commandCalls(commandstats: string, command: string): number {
  const match = new RegExp(`^cmdstat_${command.toLowerCase()}:calls=(\\d+)`, 'm').exec(commandstats);
  return match ? Number(match[1]) : 0;
}

/**
 * Who owns `identity` as `adapter` sees it: a node id, null (nobody), or 'in doubt' while the
 * adapter answers ClusterUnavailableError because presence cannot be trusted yet (a Redis
 * restart, failover or stall moments ago: other nodes may still be re-registering). Waits
 * after such a fault go through the doubt; a wait that should never see it asserts on it.
 */
export async function ownerOf(adapter: { getPresence(identity: string): Promise<PresenceRecord | null> }, identity: string): Promise<string | null> {
  try {
    return (await adapter.getPresence(identity))?.nodeId ?? null;
  } catch (error) {
    if (error instanceof ClusterUnavailableError) return 'in doubt';
    throw error;
  }
}
