import { Inject, Injectable, Logger } from '@nestjs/common';
import type { OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Cluster, Redis } from 'ioredis';
import { OcppClusterHealthIndicator, OcppClusterService } from '../lib/index.js';

/** One node as the cluster page shows it (each node writes its own every STATUS_INTERVAL_MS). */
export interface NodeStatus {
  nodeId: string;
  /** Readiness: up, degraded or down (the same check as GET /health). */
  status: string;
  reason?: string;
  /** Epoch ms of the write. */
  at: number;
}

/** A command sent through this sample's API, from any node. */
export interface CommandRecord {
  at: number;
  /** The node whose API was called. */
  via: string;
  identity: string;
  action: string;
  /** HTTP status of the answer, and `result` or the error name (NotConnected, Timeout, ...). */
  httpStatus: number;
  outcome: string;
  latencyMs: number;
}

/** Where the page's shared state lives: Redis when the nodes share one, else this process. */
export interface BoardStore {
  putNode(status: NodeStatus): Promise<void>;
  removeNode(nodeId: string): Promise<void>;
  nodes(): Promise<NodeStatus[]>;
  addCommand(record: CommandRecord): Promise<void>;
  commands(): Promise<CommandRecord[]>;
  close(): Promise<void>;
}

export const BOARD_STORE = Symbol('BOARD_STORE');
export const STATUS_INTERVAL_MS = 1_000;
export const RECENT_COMMANDS = 50;
const SHUTDOWN_BOUND_MS = 1_000;

export class MemoryBoardStore implements BoardStore {
  private readonly statuses = new Map<string, NodeStatus>();
  private readonly recent: CommandRecord[] = [];
  async putNode(status: NodeStatus): Promise<void> {
    this.statuses.set(status.nodeId, status);
  }
  async removeNode(nodeId: string): Promise<void> {
    this.statuses.delete(nodeId);
  }
  async nodes(): Promise<NodeStatus[]> {
    return [...this.statuses.values()];
  }
  async addCommand(record: CommandRecord): Promise<void> {
    this.recent.unshift(record);
    this.recent.length = Math.min(this.recent.length, RECENT_COMMANDS);
  }
  async commands(): Promise<CommandRecord[]> {
    return [...this.recent];
  }
  async close(): Promise<void> {}
}

/** A hash of node statuses and a capped list of commands, under one hash tag (Redis Cluster safe). */
export class RedisBoardStore implements BoardStore {
  private readonly nodesKey: string;
  private readonly commandsKey: string;

  constructor(
    private readonly redis: Redis | Cluster,
    prefix: string,
  ) {
    // Failed commands reach ClusterBoard.guard; the connection's own errors need a listener too.
    redis.on('error', () => undefined);
    this.nodesKey = `${prefix}{sample-board}:nodes`;
    this.commandsKey = `${prefix}{sample-board}:commands`;
  }
  async putNode(status: NodeStatus): Promise<void> {
    await this.redis.hset(this.nodesKey, status.nodeId, JSON.stringify(status));
  }
  async removeNode(nodeId: string): Promise<void> {
    await this.redis.hdel(this.nodesKey, nodeId);
  }
  async nodes(): Promise<NodeStatus[]> {
    return Object.values(await this.redis.hgetall(this.nodesKey)).map((text) => JSON.parse(text) as NodeStatus);
  }
  async addCommand(record: CommandRecord): Promise<void> {
    await this.redis.multi().lpush(this.commandsKey, JSON.stringify(record)).ltrim(this.commandsKey, 0, RECENT_COMMANDS - 1).exec();
  }
  async commands(): Promise<CommandRecord[]> {
    return (await this.redis.lrange(this.commandsKey, 0, RECENT_COMMANDS - 1)).map((text) => JSON.parse(text) as CommandRecord);
  }
  async close(): Promise<void> {
    this.redis.disconnect();
  }
}

/** The store for the sample's environment: the cluster's Redis (REDIS_URL or REDIS_CLUSTER_NODES), else memory. */
export function boardStoreFromEnv(env: NodeJS.ProcessEnv): BoardStore {
  const prefix = env.OCPP_REDIS_PREFIX || 'ocpp-cluster:';
  const clusterNodes = env.REDIS_CLUSTER_NODES?.split(',').map((node) => node.trim()).filter((node) => node.length > 0);
  const options = { lazyConnect: false, maxRetriesPerRequest: 1, connectionName: `ocpp-sample-board:${env.OCPP_NODE_ID ?? ''}` };
  if (clusterNodes && clusterNodes.length > 0) {
    const startup = clusterNodes.map((node) => ({ host: node.slice(0, node.lastIndexOf(':')), port: Number(node.slice(node.lastIndexOf(':') + 1)) }));
    return new RedisBoardStore(new Cluster(startup, { redisOptions: options }), prefix);
  }
  if (env.REDIS_URL) return new RedisBoardStore(new Redis(env.REDIS_URL, options), prefix);
  return new MemoryBoardStore();
}

/**
 * The cluster page's data (README, "Cluster page"): this node writes its readiness every
 * second; commands sent through the API are recorded with outcome and latency.
 */
@Injectable()
export class ClusterBoard implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('ClusterBoard');
  private timer: NodeJS.Timeout | null = null;
  private failing = false;

  constructor(
    @Inject(BOARD_STORE) private readonly store: BoardStore,
    private readonly ocpp: OcppClusterService,
    private readonly health: OcppClusterHealthIndicator,
  ) {}

  onApplicationBootstrap(): void {
    void this.writeStatus();
    this.timer = setInterval(() => void this.writeStatus(), STATUS_INTERVAL_MS);
    this.timer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    // Bounded: with Redis gone the page shows this node as stale instead of delaying the exit.
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, SHUTDOWN_BOUND_MS)));
    await Promise.race([this.guard(this.store.removeNode(this.ocpp.nodeId)), bound]);
    clearTimeout(timer);
    await this.store.close();
  }

  record(record: Omit<CommandRecord, 'via' | 'at'> & { startedAt: number }): void {
    const { startedAt, ...rest } = record;
    void this.guard(this.store.addCommand({ at: startedAt, via: this.ocpp.nodeId, ...rest }));
  }

  /** What GET /cluster/state answers. */
  async state(): Promise<{ now: number; self: string; nodes: NodeStatus[]; chargers: unknown[]; commands: CommandRecord[] }> {
    const [nodes, chargers, commands] = await Promise.all([this.store.nodes(), this.ocpp.getChargers(), this.store.commands()]);
    return { now: Date.now(), self: this.ocpp.nodeId, nodes, chargers, commands };
  }

  private async writeStatus(): Promise<void> {
    const result = (await this.health.isReady()).ocpp as { status: string; reason?: string };
    await this.guard(this.store.putNode({ nodeId: this.ocpp.nodeId, status: result.status, reason: result.reason, at: Date.now() }));
  }

  /** The page is a view: its store failing never fails a call; it is logged once per outage. */
  private async guard(write: Promise<void>): Promise<void> {
    try {
      await write;
      this.failing = false;
    } catch (error) {
      if (!this.failing) this.logger.warn(`cluster page store: ${(error as Error).message}`);
      this.failing = true;
    }
  }
}
