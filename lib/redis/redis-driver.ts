import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { ClusterLogger } from '../cluster/logger.js';
import { InvalidOptionsError } from '../protocol/errors.js';

/** A standalone or Redis Cluster ioredis client. */
export type RedisClient = Redis | Cluster;

export type ConnectionRole = 'writer' | 'subscriber' | 'blocking';

export interface DriverOptions {
  /** `redis://` / `rediss://` URL the driver builds its own connections from. */
  url?: string;
  /** Extra ioredis options for the connections built from `url` (TLS, password, ...). */
  redisOptions?: RedisOptions;
  /** User-built writer connection: used as given, never closed by us. */
  pubClient?: RedisClient;
  /** User-built subscriber connection (pub/sub only): used as given, never closed by us. */
  subClient?: RedisClient;
  /**
   * User-built connection for blocking stream reads: used as given, never closed by us.
   * Give it `maxRetriesPerRequest: null`.
   */
  blockingClient?: RedisClient;
  logger?: ClusterLogger;
}

interface Connection {
  role: ConnectionRole;
  client: RedisClient;
  /** Built by this driver, so closed by it. */
  owned: boolean;
  wasReady: boolean;
  down: boolean;
  errorLogged: boolean;
  /** Redis Cluster: the masters of the client's slot map (`host:port`), empty until known. */
  masters: ReadonlySet<string>;
  detach: () => void;
}

/** Statuses of a cluster node connection that cannot serve (ioredis does not reconnect cluster nodes itself). */
const NODE_DOWN = new Set(['end', 'close', 'reconnecting', 'disconnecting']);

export interface ConnectionStatus {
  role: ConnectionRole;
  status: string;
  owned: boolean;
}

/** How broadcasts travel: classic PUBLISH/SUBSCRIBE, or sharded SPUBLISH/SSUBSCRIBE (Redis Cluster 7+). */
export type PubSubMode = 'classic' | 'sharded';

/** Builds the driver's own connection for `role` (a {@link ClusterDriver} builds Cluster clients). */
export type ConnectionBuilder = (role: ConnectionRole) => RedisClient;

/**
 * One set of connections to Redis: a writer, a subscriber (pub/sub mode) and a blocking reader
 * (XREADGROUP BLOCK must not hold up other commands). The subscriber and the blocking reader
 * are created on first use, so pool members that only write open one connection.
 *
 * Every connection gets an `error` listener (an ioredis client without one crashes the
 * process on the first connection error). A `ready` that follows a disconnect is reported to
 * {@link onReconnect} listeners: Redis may have restarted and lost every key.
 */
export class RedisDriver {
  private readonly connectionsByRole = new Map<ConnectionRole, Connection>();
  private readonly reconnectListeners = new Set<(role: ConnectionRole) => void>();
  private readonly topologyListeners = new Set<() => void>();
  private closed = false;
  /** Errors reported by any connection of this driver. */
  errors = 0;
  /** Times a connection became ready again after losing its link. */
  reconnects = 0;

  constructor(
    private readonly options: DriverOptions,
    private readonly logger: ClusterLogger,
    private readonly builder?: ConnectionBuilder,
  ) {
    this.attach('writer', options.pubClient ?? this.build('writer'), options.pubClient === undefined);
    if (options.subClient) this.attach('subscriber', options.subClient, false);
    if (options.blockingClient) this.attach('blocking', options.blockingClient, false);
  }

  get writer(): RedisClient {
    return this.connection('writer').client;
  }

  /** The pub/sub connection (created on first use unless the user gave `subClient`). */
  get subscriber(): RedisClient {
    return this.connection('subscriber').client;
  }

  /** The connection for blocking reads (created on first use unless the user gave `blockingClient`). */
  get blocking(): RedisClient {
    return this.connection('blocking').client;
  }

  get isCluster(): boolean {
    return this.writer instanceof Cluster;
  }

  /**
   * Sharded pub/sub when the subscriber is a Cluster client built with `shardedSubscribers`
   * (a {@link ClusterDriver} with `shardedPubSub`, or such a user-built `subClient`).
   */
  get pubSubMode(): PubSubMode {
    const subscriber = this.connectionsByRole.get('subscriber')?.client;
    if (subscriber) return subscriber instanceof Cluster && subscriber.options.shardedSubscribers ? 'sharded' : 'classic';
    return this.defaultPubSubMode();
  }

  /** The pub/sub mode of a subscriber this driver would build (overridden by the cluster driver). */
  protected defaultPubSubMode(): PubSubMode {
    const writer = this.writer;
    return writer instanceof Cluster && writer.options.shardedSubscribers ? 'sharded' : 'classic';
  }

  /**
   * Resolves once the writer can take commands, or rejects after `timeoutMs`. A standalone
   * writer queues commands while it connects, so this matters for Cluster writers, which
   * fail commands at once while the cluster is unreachable (instead of queueing them for as
   * long as the outage lasts).
   */
  async ready(timeoutMs: number): Promise<void> {
    const client = this.writer;
    if (!(client instanceof Cluster) || client.status === 'ready' || client.options.enableOfflineQueue !== false) return;
    if (client.status === 'wait') client.connect().catch(() => undefined); // lazyConnect
    let onReady: () => void = () => undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        onReady = resolve;
        client.once('ready', onReady);
        timer = setTimeout(
          () => reject(new Error(`Redis Cluster not ready within ${timeoutMs} ms (status ${client.status})`)),
          timeoutMs,
        );
      });
    } finally {
      clearTimeout(timer);
      client.off('ready', onReady);
    }
  }

  /** Connections opened so far, with their ioredis status. */
  status(): ConnectionStatus[] {
    return [...this.connectionsByRole.values()].map(({ role, client, owned }) => ({ role, status: client.status, owned }));
  }

  /** True while every connection opened so far (or those of `roles`) is ready. */
  isHealthy(roles?: readonly ConnectionRole[]): boolean {
    return this.healthIssue(roles) === null;
  }

  /** Why isHealthy() is false (the first connection that is not ready), or null. */
  healthIssue(roles?: readonly ConnectionRole[]): string | null {
    if (this.closed) return 'driver closed';
    for (const connection of this.connectionsByRole.values()) {
      if (roles && !roles.includes(connection.role)) continue;
      if (connection.client.status !== 'ready') return `${connection.role} connection is ${connection.client.status}`;
      // The writer reaches every master (the subscriber and the reader use one node each).
      if (connection.role === 'writer' && connection.client instanceof Cluster && !mastersUp(connection.client, connection.masters)) {
        return 'writer does not reach every master';
      }
    }
    return null;
  }

  /** Called when a connection is ready again after a disconnect. Returns the unsubscribe function. */
  onReconnect(listener: (role: ConnectionRole) => void): () => void {
    this.reconnectListeners.add(listener);
    return () => this.reconnectListeners.delete(listener);
  }

  /**
   * Redis Cluster only: called when the set of masters in the writer's slot map changes (a
   * failover promoted a replica, or a new master got slots), not when slots merely move
   * between masters. A failover may have lost the last writes the old master had not
   * replicated yet. Returns the unsubscribe function.
   */
  onTopologyChange(listener: () => void): () => void {
    this.topologyListeners.add(listener);
    return () => this.topologyListeners.delete(listener);
  }

  /** Closes the connections this driver built; user-built ones are only detached from. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const connections = [...this.connectionsByRole.values()];
    await Promise.all(
      connections.map(async (connection) => {
        if (connection.owned) await quitOrDisconnect(connection.client);
        connection.detach();
      }),
    );
    this.reconnectListeners.clear();
    this.topologyListeners.clear();
  }

  /** Drops the connections this driver built at once, without QUIT (as a crash would). */
  destroy(): void {
    this.closed = true;
    for (const connection of this.connectionsByRole.values()) {
      if (connection.owned) connection.client.disconnect();
      connection.detach();
    }
    this.reconnectListeners.clear();
    this.topologyListeners.clear();
  }

  private connection(role: ConnectionRole): Connection {
    const existing = this.connectionsByRole.get(role);
    if (existing) return existing;
    if (this.closed) throw new Error(`redis driver is closed (${role} connection requested)`);
    const writer = this.connectionsByRole.get('writer');
    const client = this.builder || this.options.url !== undefined || !writer ? this.build(role) : duplicate(writer.client, role);
    return this.attach(role, client, true);
  }

  private build(role: ConnectionRole): RedisClient {
    if (this.builder) return this.builder(role);
    const base = this.options.redisOptions ?? {};
    const name = `${base.connectionName ?? 'ocpp-cluster'}:${role}`;
    const options: RedisOptions = {
      // Writers fail a command after a few reconnect attempts instead of queueing it for
      // minutes: the caller gets ClusterUnavailableError while its deadline still means something.
      maxRetriesPerRequest: 3,
      // Commands issued in the same tick leave in one write (order on the connection is kept):
      // one socket write per command was the caller's top cost in the cross-node profile.
      enableAutoPipelining: role === 'writer',
      retryStrategy: reconnectDelayMs,
      ...base,
      connectionName: name,
      ...(role === 'blocking' ? { maxRetriesPerRequest: null } : {}),
    };
    return this.options.url === undefined ? new Redis(options) : new Redis(this.options.url, options);
  }

  private attach(role: ConnectionRole, client: RedisClient, owned: boolean): Connection {
    const connection: Connection = {
      role,
      client,
      owned,
      wasReady: client.status === 'ready',
      down: false,
      errorLogged: false,
      masters: new Set(),
      detach: () => undefined,
    };
    const onError = (error: Error): void => {
      this.errors++;
      // One line per outage, not one per reconnect attempt.
      if (connection.errorLogged) return;
      connection.errorLogged = true;
      this.logger.warn(`redis ${role} connection: ${error.message}`);
    };
    const onClose = (): void => {
      if (connection.wasReady && !this.closed) connection.down = true;
    };
    const onReady = (): void => {
      const wasDown = connection.down;
      connection.wasReady = true;
      connection.down = false;
      connection.errorLogged = false;
      if (!wasDown || this.closed) return;
      this.reconnects++;
      this.logger.log(`redis ${role} connection is back`);
      for (const listener of this.reconnectListeners) listener(role);
    };
    // A Cluster client's masters, for health and (writer) to notice failovers.
    const onRefresh = (): void => {
      if (!(client instanceof Cluster)) return;
      const masters = mastersOf(client);
      if (masters.size === 0) return;
      const previous = connection.masters;
      connection.masters = masters;
      const changed = previous.size > 0 && (previous.size !== masters.size || [...masters].some((master) => !previous.has(master)));
      if (role !== 'writer' || !changed || this.closed) return;
      this.logger.log(`redis cluster masters changed: ${[...masters].sort().join(', ')}`);
      for (const listener of this.topologyListeners) listener();
    };
    // A Cluster client reports a failing node (say, a master that died) here, not as 'error'.
    const onNodeError = (error: Error, node?: string): void => {
      this.errors++;
      this.logger.debug?.(`redis ${role} connection to cluster node ${node ?? '?'}: ${error?.message ?? String(error)}`);
    };
    client.on('error', onError);
    client.on('close', onClose);
    client.on('ready', onReady);
    client.on('refresh', onRefresh);
    client.on('node error', onNodeError);
    connection.detach = () => {
      client.off('node error', onNodeError);
      client.off('error', onError);
      client.off('close', onClose);
      client.off('ready', onReady);
      client.off('refresh', onRefresh);
      // A user-built client keeps a listener so that a late error cannot crash the process.
      if (!owned && client.listenerCount('error') === 0) client.on('error', () => undefined);
    };
    this.connectionsByRole.set(role, connection);
    return connection;
  }
}

/** The masters (`host:port`) of the client's slot map; empty while it is unknown. */
function mastersOf(cluster: Cluster): Set<string> {
  const masters = new Set<string>();
  for (let slot = 0; slot < 16384; slot++) {
    const master = cluster.slots[slot]?.[0];
    if (master !== undefined) masters.add(master);
  }
  return masters;
}

/**
 * True while every master of the slot map has a connection in the client's pool that is not
 * down (a lazy one not opened yet counts). ioredis never reconnects a cluster node: the
 * connection to a master that died (or was cut) ends and leaves the pool, and the next
 * command or slot refresh opens a new one. So a dead master counts as down until the slot
 * map names its successor, a whole cluster that is gone is down at once, and a cut
 * connection to a live master is down until the next command (a heartbeat at the latest).
 */
function mastersUp(cluster: Cluster, masters: ReadonlySet<string>): boolean {
  if (masters.size === 0) return true;
  const statusByNode = new Map(cluster.nodes('all').map((node) => [`${node.options.host}:${node.options.port}`, node.status]));
  for (const master of masters) {
    const status = statusByNode.get(master);
    if (status === undefined || NODE_DOWN.has(status)) return false;
  }
  return true;
}

/**
 * Reconnect backoff of the connections we build: 25 ms more per attempt, at most 500 ms, plus a
 * little jitter. ioredis's default doubles up to 5 s, so a Redis back after a 150 ms restart
 * could wait most of a second for the next attempt, with every node's presence and inbox on hold.
 * A few connections per node trying twice a second while Redis is down cost Redis nothing.
 */
export function reconnectDelayMs(attempt: number): number {
  return Math.min(25 * attempt, 500) + Math.floor(Math.random() * 25);
}

function duplicate(client: RedisClient, role: ConnectionRole): RedisClient {
  if (client instanceof Cluster) {
    const redisOptions = client.options.redisOptions ?? {};
    const name = `${redisOptions.connectionName ?? 'ocpp-cluster'}:${role}`;
    return client.duplicate([], {
      // The duplicate of a writer that fails fast still has to wait for its first connect.
      enableOfflineQueue: true,
      redisOptions: { ...redisOptions, connectionName: name, ...(role === 'blocking' ? { maxRetriesPerRequest: null } : {}) },
    });
  }
  const name = `${client.options.connectionName ?? 'ocpp-cluster'}:${role}`;
  return client.duplicate({ connectionName: name, ...(role === 'blocking' ? { maxRetriesPerRequest: null } : {}) });
}

async function quitOrDisconnect(client: RedisClient, timeoutMs = 1000): Promise<void> {
  if (client.status === 'end') return;
  if (client.status !== 'ready') {
    client.disconnect();
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, timeoutMs);
  });
  await Promise.race([client.quit().then(() => undefined, () => undefined), timeout]);
  clearTimeout(timer);
  if ((client.status as string) !== 'end') client.disconnect();
}

/**
 * Builds a driver from a URL (the driver owns and closes those connections) or from
 * user-built clients (used as given, never closed). Roles the user did not give are
 * duplicated from `pubClient` and owned by the driver.
 */
export function createDriver(options: DriverOptions): RedisDriver;
/** The seed's form: a writer and, optionally, a subscriber and a blocking reader, all user-built. */
export function createDriver(pubClient: RedisClient, subClient?: RedisClient, blockingClient?: RedisClient): RedisDriver;
export function createDriver(first: DriverOptions | RedisClient, sub?: RedisClient, blocking?: RedisClient): RedisDriver {
  const options: DriverOptions = first instanceof Redis || first instanceof Cluster ? { pubClient: first, subClient: sub, blockingClient: blocking } : first;
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionsError('redis', 'must be an object: createDriver({ url }) or createDriver(pubClient, subClient?, blockingClient?)');
  }
  const { url, pubClient, subClient, blockingClient } = options;
  if (url !== undefined && (typeof url !== 'string' || !/^rediss?:\/\//.test(url))) {
    throw new InvalidOptionsError('url', 'must be a redis:// or rediss:// URL');
  }
  if (url !== undefined && pubClient !== undefined) {
    throw new InvalidOptionsError('url', 'give either url or pubClient, not both');
  }
  if (url === undefined && pubClient === undefined) {
    throw new InvalidOptionsError('url', 'either url or pubClient is required: createDriver({ url }) or createDriver(new Redis(url), new Redis(url))');
  }
  for (const [name, client] of [
    ['pubClient', pubClient],
    ['subClient', subClient],
    ['blockingClient', blockingClient],
  ] as const) {
    if (client !== undefined && !(client instanceof Redis || client instanceof Cluster)) {
      throw new InvalidOptionsError(name, 'must be an ioredis Redis or Cluster client');
    }
  }
  if ((subClient || blockingClient) && !pubClient) {
    throw new InvalidOptionsError(subClient ? 'subClient' : 'blockingClient', 'needs pubClient as well');
  }
  if (subClient && (subClient === pubClient || subClient === blockingClient)) {
    throw new InvalidOptionsError('subClient', 'must be a connection of its own (pub/sub mode blocks other commands)');
  }
  if (blockingClient && blockingClient === pubClient) {
    throw new InvalidOptionsError('blockingClient', 'must be a connection of its own (blocking reads hold it)');
  }
  return new RedisDriver(options, options.logger ?? CONSOLE_LOGGER);
}

const CONSOLE_LOGGER: ClusterLogger = {
  log: () => undefined,
  warn: (message) => console.warn(`[ocpp-cluster:redis] ${message}`),
  error: (message) => console.error(`[ocpp-cluster:redis] ${message}`),
};

export { CONSOLE_LOGGER as DEFAULT_REDIS_LOGGER };
