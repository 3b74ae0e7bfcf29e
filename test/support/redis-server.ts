import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Real `redis-server` processes for tests, each on a free port in its own temp dir, with no
 * persistence (a restart loses every key, which is what the Redis-restart tests need).
 * Every process is stopped by its pid: call {@link stopAllRedisServers} in afterAll; a
 * process-exit hook SIGKILLs whatever is left if a test run dies.
 */

const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;

const running = new Set<RedisServer>();

export interface RedisServerOptions {
  /** Fixed port (default: a free one). */
  port?: number;
  /** Extra redis-server arguments. */
  args?: string[];
}

export class RedisServer {
  private child: ChildProcess | null = null;
  private output = '';
  readonly dir: string;

  constructor(
    readonly port: number,
    private readonly extraArgs: string[] = [],
  ) {
    this.dir = mkdtempSync(join(tmpdir(), `redis-${port}-`));
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get isRunning(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Last lines redis-server printed (for failure messages). */
  get log(): string {
    return this.output.slice(-4000);
  }

  async start(): Promise<void> {
    if (this.isRunning) return;
    const args = [
      '--port', String(this.port),
      '--bind', '127.0.0.1',
      '--save', '',
      '--appendonly', 'no',
      '--dir', this.dir,
      '--protected-mode', 'no',
      ...this.extraArgs,
    ];
    const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (chunk: Buffer) => (this.output = (this.output + chunk.toString()).slice(-16_000)));
    child.stderr?.on('data', (chunk: Buffer) => (this.output = (this.output + chunk.toString()).slice(-16_000)));
    child.on('error', (error) => (this.output += `\nspawn error: ${error.message}`));
    this.child = child;
    running.add(this);
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (!(await ping(this.port))) {
      if (!this.isRunning) throw new Error(`redis-server on ${this.port} exited:\n${this.log}`);
      if (Date.now() > deadline) {
        await this.kill9();
        throw new Error(`redis-server on ${this.port} did not answer PING within ${READY_TIMEOUT_MS} ms:\n${this.log}`);
      }
      await sleep(50);
    }
  }

  /** SIGTERM, then SIGKILL if it has not exited within a bound. */
  async stop(): Promise<void> {
    await this.signal('SIGTERM', STOP_TIMEOUT_MS);
    if (this.isRunning) await this.signal('SIGKILL', STOP_TIMEOUT_MS);
    running.delete(this);
  }

  /** SIGKILL: the server vanishes mid-command, as in a crash. */
  async kill9(): Promise<void> {
    await this.signal('SIGKILL', STOP_TIMEOUT_MS);
    running.delete(this);
  }

  /** Stops it and starts it again on the same port, empty (no persistence). */
  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** Runs one command with redis-cli (no client library involved). */
  cli(...args: string[]): string {
    const result = spawnSync('redis-cli', ['-p', String(this.port), ...args], { encoding: 'utf8', timeout: 10_000 });
    if (result.status !== 0) throw new Error(`redis-cli ${args.join(' ')} failed: ${result.stderr}`);
    return result.stdout.trim();
  }

  /** Removes the temp dir (after stop). */
  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async signal(signal: NodeJS.Signals, timeoutMs: number): Promise<void> {
    const child = this.child;
    if (!child || !this.isRunning || child.pid === undefined) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      process.kill(child.pid, signal);
    } catch {
      return; // already gone
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
  }
}

/** Starts a standalone server on a free port and waits until it answers PING. */
export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  const port = options.port ?? (await freePort());
  const server = new RedisServer(port, options.args);
  await server.start();
  return server;
}

export interface StartClusterOptions {
  /** Masters (default 3). */
  masters?: number;
  /** Replicas per master (default 0). */
  replicas?: number;
  /** `cluster-node-timeout` (default 1000 with replicas, 2000 without): how soon a dead master fails over. */
  nodeTimeoutMs?: number;
  /** Extra redis-server arguments for every node. */
  args?: string[];
}

/** One line of CLUSTER NODES. */
export interface ClusterNodeInfo {
  id: string;
  port: number;
  flags: string[];
  /** Master id of a replica, null for a master. */
  masterId: string | null;
  /** Slot ranges `[first, last]` a master serves. */
  slots: Array<[number, number]>;
}

const CLUSTER_READY_TIMEOUT_MS = 30_000;

/** A slot on its way from `source` to `target` (see {@link RedisClusterHandle.beginMigration}). */
export interface SlotMigration {
  slot: number;
  source: RedisServer;
  target: RedisServer;
  /** Moves up to `count` keys of the slot now; returns how many moved. */
  moveKeys(count: number): number;
  /** Moves the remaining keys and hands the slot to the target. */
  finish(options?: { pauseMs?: number; keysPerBatch?: number }): Promise<void>;
}

/**
 * A real Redis Cluster of `masters` masters with `replicas` replicas each, every node a
 * {@link RedisServer} in its own temp dir (no persistence; `nodes.conf` survives restarts,
 * so a restarted node rejoins with its old identity and comes back empty).
 */
export class RedisClusterHandle {
  constructor(readonly servers: RedisServer[]) {}

  /** host:port of every node started (seed nodes for a client). */
  get nodes(): Array<{ host: string; port: number }> {
    return this.servers.map((server) => ({ host: '127.0.0.1', port: server.port }));
  }

  /** `host:port,host:port,...` as REDIS_CLUSTER_NODES takes it. */
  get nodeList(): string {
    return this.nodes.map(({ host, port }) => `${host}:${port}`).join(',');
  }

  get running(): RedisServer[] {
    return this.servers.filter((server) => server.isRunning);
  }

  serverOnPort(port: number): RedisServer {
    const server = this.servers.find((candidate) => candidate.port === port);
    if (!server) throw new Error(`no cluster node on port ${port}`);
    return server;
  }

  /** CLUSTER NODES as one live node sees it (connected nodes only, failed ones flagged). */
  topology(from: RedisServer = this.running[0]): ClusterNodeInfo[] {
    return from
      .cli('CLUSTER', 'NODES')
      .split('\n')
      .filter((line) => line.trim().length > 0)
      .map((line) => {
        const [id, address, flags, master, , , , , ...slots] = line.trim().split(' ');
        const port = Number(/:(\d+)@/.exec(address)?.[1]);
        return {
          id,
          port,
          flags: flags.split(','),
          masterId: master === '-' ? null : master,
          slots: slots
            .filter((slot) => !slot.startsWith('['))
            .map((slot) => {
              const [first, last] = slot.split('-').map(Number);
              return [first, last ?? first] as [number, number];
            }),
        };
      });
  }

  /** Running masters that serve slots. */
  masters(): RedisServer[] {
    return this.topology()
      .filter((node) => node.flags.includes('master') && !node.flags.includes('fail') && node.slots.length > 0)
      .map((node) => this.serverOnPort(node.port))
      .filter((server) => server.isRunning);
  }

  /** The running master that serves `slot`. */
  masterOf(slot: number): RedisServer {
    const owner = this.topology().find(
      (node) => node.flags.includes('master') && !node.flags.includes('fail') && node.slots.some(([a, b]) => slot >= a && slot <= b),
    );
    if (!owner) throw new Error(`no master serves slot ${slot}`);
    return this.serverOnPort(owner.port);
  }

  nodeId(server: RedisServer): string {
    return server.cli('CLUSTER', 'MYID');
  }

  /** Running replicas of `master`. */
  replicasOf(master: RedisServer): RedisServer[] {
    const id = this.nodeId(master);
    return this.topology()
      .filter((node) => node.masterId === id && !node.flags.includes('fail'))
      .map((node) => this.serverOnPort(node.port))
      .filter((server) => server.isRunning);
  }

  /**
   * Until every running node says `cluster_state:ok`, every slot has a running master, every
   * running node agrees on who serves which slots, and (when `replicated`) every running
   * replica's link to its master is up.
   */
  async waitUntilHealthy({ timeoutMs = CLUSTER_READY_TIMEOUT_MS, replicated = true } = {}): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const problem = this.healthProblem(replicated);
      if (!problem) return;
      if (Date.now() > deadline) throw new Error(`cluster not healthy within ${timeoutMs} ms: ${problem}`);
      await sleep(100);
    }
  }

  /** What keeps the cluster from being healthy, or '' when nothing does. */
  private healthProblem(replicated: boolean): string {
    const running = this.running;
    const views: string[] = [];
    for (const server of running) {
      let info: string;
      try {
        info = server.cli('CLUSTER', 'INFO');
      } catch (error) {
        return `${server.port}: ${(error as Error).message}`;
      }
      if (!info.includes('cluster_state:ok')) return `${server.port} is not ok`;
      const topology = this.topology(server);
      const masters = topology.filter((node) => node.flags.includes('master') && node.slots.length > 0);
      const down = masters.find((node) => node.flags.some((flag) => flag.startsWith('fail')) || !running.some((live) => live.port === node.port));
      if (down) return `${server.port} sees master ${down.port} serving slots while it is down`;
      views.push(
        masters
          .map((node) => `${node.port}:${node.slots.map((range) => range.join('-')).join(',')}`)
          .sort()
          .join(' '),
      );
      if (replicated && topology.find((node) => node.flags.includes('myself'))?.masterId) {
        if (!server.cli('INFO', 'replication').includes('master_link_status:up')) return `replica ${server.port} not in sync`;
      }
    }
    if (new Set(views).size > 1) return `nodes disagree: ${[...new Set(views)].join(' | ')}`;
    return '';
  }

  /**
   * SIGKILLs a master and waits until one of its replicas serves its slots and the cluster
   * is ok again. Returns the promoted replica.
   */
  async killMaster(master: RedisServer, { timeoutMs = CLUSTER_READY_TIMEOUT_MS } = {}): Promise<RedisServer> {
    const replicas = this.replicasOf(master);
    if (replicas.length === 0) throw new Error(`master ${master.port} has no replica to fail over to`);
    await master.kill9();
    await this.waitUntilHealthy({ timeoutMs, replicated: false });
    const promoted = replicas.find((replica) => this.topology().some((node) => node.port === replica.port && node.flags.includes('master')));
    if (!promoted) throw new Error(`no replica of ${master.port} was promoted`);
    return promoted;
  }

  /** Starts a stopped node again (empty); an old master rejoins as a replica of its successor. */
  async restartNode(server: RedisServer): Promise<void> {
    await server.start();
    // A former master learns it was replaced only through gossip: allow it twice the usual bound.
    await this.waitUntilHealthy({ timeoutMs: 2 * CLUSTER_READY_TIMEOUT_MS });
  }

  /** Every node down, then up again empty (nodes.conf kept): the operator's "Redis restarted". */
  async restartAll(): Promise<void> {
    await this.stopAll();
    await this.startAll();
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.servers.map((server) => server.stop()));
  }

  async startAll(): Promise<void> {
    await Promise.all(this.servers.map((server) => server.start()));
    await this.waitUntilHealthy();
  }

  /**
   * Starts moving `slot` to `target`: IMPORTING on the target, MIGRATING on the source. Until
   * `finish()`, keys already moved answer ASK on the source, multi-key commands over a split
   * TRYAGAIN; `finish()` moves the rest and hands the slot over (SETSLOT NODE on every master).
   */
  beginMigration(slot: number, target: RedisServer): SlotMigration {
    const source = this.masterOf(slot);
    const targetId = this.nodeId(target);
    const sourceId = this.nodeId(source);
    target.cli('CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', sourceId);
    source.cli('CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', targetId);
    const moveKeys = (count: number): number => {
      const keys = source.cli('CLUSTER', 'GETKEYSINSLOT', String(slot), String(count)).split('\n').filter(Boolean);
      if (keys.length > 0) source.cli('MIGRATE', '127.0.0.1', String(target.port), '', '0', '5000', 'REPLACE', 'KEYS', ...keys);
      return keys.length;
    };
    return {
      slot,
      source,
      target,
      moveKeys,
      finish: async ({ pauseMs = 20, keysPerBatch = 2 } = {}) => {
        while (moveKeys(keysPerBatch) > 0) await sleep(pauseMs);
        // Target first, then source, then the others: the order redis-cli uses.
        const masters = this.topology()
          .filter((node) => node.flags.includes('master') && !node.flags.includes('fail'))
          .map((node) => this.serverOnPort(node.port))
          .filter((server) => server.isRunning);
        const ordered = [target, source, ...masters.filter((server) => server !== target && server !== source)];
        for (const master of ordered) master.cli('CLUSTER', 'SETSLOT', String(slot), 'NODE', targetId);
      },
    };
  }

  /**
   * Moves `slots` to `target` one at a time with the CLUSTER SETSLOT sequence (see
   * {@link beginMigration}), keys in small MIGRATE batches with `pauseMs` between them, so
   * that clients meet ASK and TRYAGAIN. The slots stay usable throughout.
   */
  async migrateSlots(slots: readonly number[], target: RedisServer, { pauseMs = 20, keysPerBatch = 2 } = {}): Promise<void> {
    for (const slot of slots) {
      if (this.masterOf(slot) === target) continue;
      await this.beginMigration(slot, target).finish({ pauseMs, keysPerBatch });
    }
    await this.waitUntilHealthy();
  }

  /**
   * `redis-cli --cluster reshard`: moves `count` slots from `source` to `target`, as an
   * operator would. Runs in the background (the test's traffic keeps flowing meanwhile).
   */
  async reshard(source: RedisServer, target: RedisServer, count: number, { timeoutMs = 60_000 } = {}): Promise<void> {
    const args = [
      '--cluster', 'reshard', `127.0.0.1:${source.port}`,
      '--cluster-from', this.nodeId(source),
      '--cluster-to', this.nodeId(target),
      '--cluster-slots', String(count),
      '--cluster-yes',
    ];
    const child = spawn('redis-cli', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-8000)));
    child.stderr?.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-8000)));
    let timer: NodeJS.Timeout | undefined;
    const code = await new Promise<number | null>((resolve) => {
      child.once('exit', (exitCode) => resolve(exitCode));
      child.once('error', () => resolve(-1));
      timer = setTimeout(() => {
        if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      }, timeoutMs);
    });
    clearTimeout(timer);
    if (code !== 0) throw new Error(`redis-cli --cluster reshard exited with ${code}:\n${output}`);
    await this.waitUntilHealthy();
  }

  async stop(): Promise<void> {
    await this.stopAll();
    for (const server of this.servers) server.cleanup();
  }
}

/**
 * Starts `masters` × (1 + `replicas`) nodes with `--cluster-enabled yes` on free ports and
 * joins them with `redis-cli --cluster create ... --cluster-replicas <n> --cluster-yes`;
 * resolves once the cluster is healthy (every node ok, every replica in sync).
 */
export async function startRedisCluster(options: number | StartClusterOptions = 3): Promise<RedisClusterHandle> {
  const { masters = 3, replicas = 0, nodeTimeoutMs, args = [] } = typeof options === 'number' ? { masters: options } : options;
  const timeout = nodeTimeoutMs ?? (replicas > 0 ? 1000 : 2000);
  const servers: RedisServer[] = [];
  try {
    // Ports one after the other (each distinct, and no node's port another's bus port); the
    // servers then start together.
    const ports: number[] = [];
    while (ports.length < masters * (1 + replicas)) {
      // The cluster bus listens on port + 10000: both must be free.
      const port = await freePort((candidate) => candidate + 10_000 < 65_536);
      const taken = ports.flatMap((other) => [other, other + 10_000]);
      if (!taken.includes(port) && !taken.includes(port + 10_000)) ports.push(port);
    }
    for (const port of ports) {
      const server = new RedisServer(port, [
        '--cluster-enabled', 'yes',
        '--cluster-config-file', 'nodes.conf',
        '--cluster-node-timeout', String(timeout),
        // A replica may take over however long its link was down (tests kill and restart freely).
        '--cluster-replica-validity-factor', '0',
        // A stopping master does not wait for its replicas (the default waits up to 10 s).
        '--shutdown-timeout', '0',
        // A master starts a replica's full sync at once (the default waits 5 s for more replicas
        // to join the same transfer): at start, after a restart, and when an old master rejoins.
        '--repl-diskless-sync-delay', '0',
        ...args,
      ]);
      servers.push(server);
    }
    await Promise.all(servers.map((server) => server.start()));
    const create = spawnSync(
      'redis-cli',
      [
        '--cluster', 'create', ...servers.map((server) => `127.0.0.1:${server.port}`),
        '--cluster-replicas', String(replicas),
        '--cluster-yes',
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    if (create.status !== 0) throw new Error(`redis-cli --cluster create failed:\n${create.stdout}\n${create.stderr}`);
    const cluster = new RedisClusterHandle(servers);
    await cluster.waitUntilHealthy();
    return cluster;
  } catch (error) {
    await Promise.all(servers.map((server) => server.stop()));
    for (const server of servers) server.cleanup();
    throw error;
  }
}

/** Stops every server this process started (by pid). For afterAll. */
export async function stopAllRedisServers(): Promise<void> {
  const servers = [...running];
  await Promise.all(servers.map((server) => server.stop()));
  for (const server of servers) server.cleanup();
}

process.once('exit', () => {
  for (const server of running) {
    if (server.pid !== undefined && server.isRunning) {
      try {
        process.kill(server.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
});

/** A TCP port nobody listens on right now (the OS picks it). */
export async function freePort(accept: (port: number) => boolean = () => true): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        const chosen = typeof address === 'object' && address ? address.port : 0;
        server.close(() => resolve(chosen));
      });
    });
    if (accept(port) && (await portIsFree(port + 10_000).catch(() => false))) return port;
  }
  throw new Error('no free port found');
}

function portIsFree(port: number): Promise<boolean> {
  if (port >= 65_536) return Promise.resolve(false);
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** True when something on `port` answers PING with PONG within a bound. */
export function ping(port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let answer = '';
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      answer += chunk.toString();
      if (answer.includes('\r\n')) done(answer.startsWith('+PONG'));
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
