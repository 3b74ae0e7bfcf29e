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
  detach: () => void;
}

export interface ConnectionStatus {
  role: ConnectionRole;
  status: string;
  owned: boolean;
}

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
  private closed = false;
  /** Errors reported by any connection of this driver. */
  errors = 0;
  /** Times a connection became ready again after losing its link. */
  reconnects = 0;

  constructor(
    private readonly options: DriverOptions,
    private readonly logger: ClusterLogger,
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

  /** Connections opened so far, with their ioredis status. */
  status(): ConnectionStatus[] {
    return [...this.connectionsByRole.values()].map(({ role, client, owned }) => ({ role, status: client.status, owned }));
  }

  /** True while every connection opened so far (or those of `roles`) is ready. */
  isHealthy(roles?: readonly ConnectionRole[]): boolean {
    if (this.closed) return false;
    for (const connection of this.connectionsByRole.values()) {
      if (roles && !roles.includes(connection.role)) continue;
      if (connection.client.status !== 'ready') return false;
    }
    return true;
  }

  /** Called when a connection is ready again after a disconnect. Returns the unsubscribe function. */
  onReconnect(listener: (role: ConnectionRole) => void): () => void {
    this.reconnectListeners.add(listener);
    return () => this.reconnectListeners.delete(listener);
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
  }

  /** Drops the connections this driver built at once, without QUIT (as a crash would). */
  destroy(): void {
    this.closed = true;
    for (const connection of this.connectionsByRole.values()) {
      if (connection.owned) connection.client.disconnect();
      connection.detach();
    }
    this.reconnectListeners.clear();
  }

  private connection(role: ConnectionRole): Connection {
    const existing = this.connectionsByRole.get(role);
    if (existing) return existing;
    if (this.closed) throw new Error(`redis driver is closed (${role} connection requested)`);
    const writer = this.connectionsByRole.get('writer');
    const client = this.options.url !== undefined || !writer ? this.build(role) : duplicate(writer.client, role);
    return this.attach(role, client, true);
  }

  private build(role: ConnectionRole): RedisClient {
    const base = this.options.redisOptions ?? {};
    const name = `${base.connectionName ?? 'ocpp-cluster'}:${role}`;
    const options: RedisOptions = {
      // Writers fail a command after a few reconnect attempts instead of queueing it for
      // minutes: the caller gets ClusterUnavailableError while its deadline still means something.
      maxRetriesPerRequest: 3,
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
    client.on('error', onError);
    client.on('close', onClose);
    client.on('ready', onReady);
    connection.detach = () => {
      client.off('error', onError);
      client.off('close', onClose);
      client.off('ready', onReady);
      // A user-built client keeps a listener so that a late error cannot crash the process.
      if (!owned && client.listenerCount('error') === 0) client.on('error', () => undefined);
    };
    this.connectionsByRole.set(role, connection);
    return connection;
  }
}

function duplicate(client: RedisClient, role: ConnectionRole): RedisClient {
  if (client instanceof Cluster) return client.duplicate();
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
export function createDriver(options: DriverOptions): RedisDriver {
  if (options === null || typeof options !== 'object') throw new InvalidOptionsError('redis', 'must be an object');
  const { url, pubClient, subClient, blockingClient } = options;
  if (url !== undefined && (typeof url !== 'string' || !/^rediss?:\/\//.test(url))) {
    throw new InvalidOptionsError('url', 'must be a redis:// or rediss:// URL');
  }
  if (url !== undefined && pubClient !== undefined) {
    throw new InvalidOptionsError('url', 'give either url or pubClient, not both');
  }
  if (url === undefined && pubClient === undefined) {
    throw new InvalidOptionsError('url', 'either url or pubClient is required');
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
