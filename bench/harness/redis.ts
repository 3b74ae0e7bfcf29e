import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { trackChild } from './processes.js';

/** A free TCP port on 127.0.0.1 (asked from the kernel, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** True once the server answers PING with PONG. */
function ping(port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let reply = '';
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (data) => {
      reply += data.toString();
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
    socket.on('error', () => done(false));
  });
}

/** The bench's own redis-server (no persistence), on its own port; stopped and restarted by pid. */
export class RedisServer {
  private child: ChildProcess | null = null;

  private constructor(
    readonly port: number,
    private readonly logDir: string,
    private readonly extraArgs: string[] = [],
  ) {}

  static async start(logDir: string): Promise<RedisServer> {
    const server = new RedisServer(await freePort(), logDir);
    await server.launch();
    return server;
  }

  /** A node of a Redis Cluster (its nodes.conf named by port in `logDir`); not yet joined to the others. */
  static async startClusterNode(logDir: string, port: number): Promise<RedisServer> {
    const server = new RedisServer(port, logDir, [
      '--cluster-enabled', 'yes',
      '--dir', logDir,
      '--cluster-config-file', `nodes-${port}.conf`,
      '--cluster-node-timeout', '2000',
    ]);
    await server.launch();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts redis-server and resolves once it answers PING. */
  async launch(): Promise<void> {
    const child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning', ...this.extraArgs],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const log = createWriteStream(join(this.logDir, `redis-${this.port}.log`), { flags: 'a' });
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    trackChild(child);
    this.child = child;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`redis-server exited (${child.exitCode}); see redis-${this.port}.log`);
      if (await ping(this.port)) return;
      await sleep(20);
    }
    throw new Error(`redis-server on ${this.port} did not answer within 10 s`);
  }

  /** SIGKILL by pid (no shutdown save: the data is gone, as after a crash). */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    process.kill(child.pid!, 'SIGKILL');
    await exited;
    this.child = null;
  }
}

/** One Redis command over a fresh connection; resolves with the raw RESP reply (for INFO, DBSIZE, MEMORY USAGE). */
export function redisCommand(port: number, args: string[], timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`redis ${args[0]} took longer than ${timeoutMs} ms`));
    }, timeoutMs);
    const complete = (text: string): boolean => {
      if (!text.includes('\r\n')) return false;
      if (text[0] !== '$') return true;
      const length = Number(text.slice(1, text.indexOf('\r\n')));
      return length < 0 || Buffer.byteLength(text) >= text.indexOf('\r\n') + 2 + length + 2;
    };
    socket.on('connect', () => socket.write(`*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join('')}`));
    socket.on('data', (data) => {
      chunks.push(data);
      const text = Buffer.concat(chunks).toString();
      if (!complete(text)) return;
      clearTimeout(timer);
      socket.destroy();
      resolve(text);
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** `used_memory` from INFO memory, in bytes. */
export async function redisUsedMemory(port: number): Promise<number> {
  const info = await redisCommand(port, ['INFO', 'memory']);
  const match = /used_memory:(\d+)/.exec(info);
  if (!match) throw new Error('INFO memory without used_memory');
  return Number(match[1]);
}

/**
 * A Redis Cluster of `masters` masters without replicas (`redis-cli --cluster create`), ready
 * once every node says `cluster_state:ok`; the bench's Redis Cluster variant (SOAK_REDIS=cluster).
 */
export class RedisCluster {
  private constructor(readonly servers: RedisServer[]) {}

  static async start(logDir: string, masters = 3): Promise<RedisCluster> {
    const ports: number[] = [];
    while (ports.length < masters) {
      // The cluster bus listens on port + 10000: both must be free, and no node's bus port another's port.
      const port = await freePort();
      const taken = ports.flatMap((other) => [other, other + 10_000]);
      if (port + 10_000 < 65_536 && !taken.includes(port) && !taken.includes(port + 10_000) && (await isFree(port + 10_000))) ports.push(port);
    }
    const servers: RedisServer[] = [];
    const cluster = new RedisCluster(servers);
    try {
      for (const port of ports) servers.push(await RedisServer.startClusterNode(logDir, port));
      const create = spawnSync('redis-cli', ['--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', '0', '--cluster-yes'], {
        encoding: 'utf8',
        timeout: 60_000,
      });
      if (create.status !== 0) throw new Error(`redis-cli --cluster create failed:\n${create.stdout}\n${create.stderr}`);
      const deadline = Date.now() + 30_000;
      while (!(await cluster.isReady())) {
        if (Date.now() > deadline) throw new Error('Redis Cluster not ok within 30 s');
        await sleep(100);
      }
      return cluster;
    } catch (error) {
      await cluster.stop();
      throw error;
    }
  }

  /** `host:port,host:port,...` (seed nodes, as REDIS_CLUSTER_NODES and BENCH_REDIS_CLUSTER_NODES take them). */
  get nodeList(): string {
    return this.servers.map((server) => `127.0.0.1:${server.port}`).join(',');
  }

  get pid(): number | undefined {
    return this.servers[0]?.pid;
  }

  async stop(): Promise<void> {
    await Promise.all(this.servers.map((server) => server.stop()));
  }

  private async isReady(): Promise<boolean> {
    for (const server of this.servers) {
      const info = await redisCommand(server.port, ['CLUSTER', 'INFO']).catch(() => '');
      if (!info.includes('cluster_state:ok')) return false;
    }
    return true;
  }
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}
