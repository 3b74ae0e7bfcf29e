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

export interface RedisClusterHandle {
  servers: RedisServer[];
  /** host:port of every master. */
  nodes: Array<{ host: string; port: number }>;
  stop(): Promise<void>;
}

/**
 * Three masters (`--cluster-enabled yes`) joined with `redis-cli --cluster create
 * --cluster-replicas 0 --cluster-yes`; resolves once CLUSTER INFO says ok on every node.
 */
export async function startRedisCluster(masters = 3): Promise<RedisClusterHandle> {
  const servers: RedisServer[] = [];
  try {
    for (let i = 0; i < masters; i++) {
      // The cluster bus listens on port + 10000: both must be free.
      const port = await freePort((candidate) => candidate + 10_000 < 65_536);
      const server = new RedisServer(port, ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000']);
      servers.push(server);
      await server.start();
    }
    const create = spawnSync(
      'redis-cli',
      ['--cluster', 'create', ...servers.map((server) => `127.0.0.1:${server.port}`), '--cluster-replicas', '0', '--cluster-yes'],
      { encoding: 'utf8', timeout: 30_000 },
    );
    if (create.status !== 0) throw new Error(`redis-cli --cluster create failed:\n${create.stdout}\n${create.stderr}`);
    const deadline = Date.now() + 20_000;
    while (!servers.every((server) => server.cli('CLUSTER', 'INFO').includes('cluster_state:ok'))) {
      if (Date.now() > deadline) throw new Error('cluster did not reach cluster_state:ok in 20 s');
      await sleep(100);
    }
  } catch (error) {
    await Promise.all(servers.map((server) => server.stop()));
    throw error;
  }
  return {
    servers,
    nodes: servers.map((server) => ({ host: '127.0.0.1', port: server.port })),
    stop: async () => {
      await Promise.all(servers.map((server) => server.stop()));
      for (const server of servers) server.cleanup();
    },
  };
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
