import { spawn } from 'node:child_process';
import { startRedisCluster, startRedisServer } from '../test/support/redis-server.js';
import type { RedisClusterHandle, RedisServer } from '../test/support/redis-server.js';

/** DEBUG SLEEP needs the debug command enabled (Redis 7 disables it by default). */
const SERVER_ARGS = ['--enable-debug-command', 'yes'];
const CLI_TIMEOUT_MS = 30_000;

/**
 * redis-cli without blocking the checker's event loop (the charge points' receive times must
 * stay honest while a command such as DEBUG SLEEP runs).
 */
export function cliAsync(port: number, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('redis-cli', ['-p', String(port), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), CLI_TIMEOUT_MS);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out.trim());
      else reject(new Error(`redis-cli -p ${port} ${args.join(' ')} exited ${code}: ${out.trim()}`));
    });
  });
}

export interface ClusterNodeLine {
  id: string;
  port: number;
  flags: string[];
  masterId: string | null;
  hasSlots: boolean;
}

/** The Redis the nodes run on: a standalone server or a cluster of 3 masters + 3 replicas. */
export class RedisUnderTest {
  private constructor(
    readonly mode: 'standalone' | 'cluster',
    readonly standalone: RedisServer | null,
    readonly cluster: RedisClusterHandle | null,
  ) {}

  static async start(mode: 'standalone' | 'cluster'): Promise<RedisUnderTest> {
    if (mode === 'standalone') return new RedisUnderTest(mode, await startRedisServer({ args: SERVER_ARGS }), null);
    const cluster = await startRedisCluster({ masters: 3, replicas: 1, args: SERVER_ARGS });
    return new RedisUnderTest(mode, null, cluster);
  }

  /** Environment that points a sample node at this Redis. */
  nodeEnv(): Record<string, string> {
    return this.cluster ? { REDIS_CLUSTER_NODES: this.cluster.nodeList } : { REDIS_URL: this.standalone!.url };
  }

  get servers(): RedisServer[] {
    return this.cluster ? this.cluster.servers : [this.standalone!];
  }

  running(): RedisServer[] {
    return this.servers.filter((server) => server.isRunning);
  }

  /** Servers that accept writes now (the standalone server, or the cluster's masters serving slots). */
  async masters(): Promise<RedisServer[]> {
    if (!this.cluster) return [this.standalone!];
    const lines = await this.topology();
    return lines
      .filter((line) => line.flags.includes('master') && !line.flags.some((flag) => flag.startsWith('fail')) && line.hasSlots)
      .map((line) => this.cluster!.servers.find((server) => server.port === line.port))
      .filter((server): server is RedisServer => server !== undefined && server.isRunning);
  }

  /** A master with a connected, running replica: the only kind that can be killed without losing slots. */
  async masterWithReplica(): Promise<RedisServer[]> {
    const lines = await this.topology();
    const masters = await this.masters();
    return masters.filter((master) => {
      const id = lines.find((line) => line.port === master.port)?.id;
      return lines.some(
        (line) =>
          line.masterId === id &&
          !line.flags.some((flag) => flag.startsWith('fail')) &&
          this.cluster!.servers.some((server) => server.port === line.port && server.isRunning),
      );
    });
  }

  async topology(): Promise<ClusterNodeLine[]> {
    const from = this.running()[0];
    const text = await cliAsync(from.port, 'CLUSTER', 'NODES');
    return text
      .split('\n')
      .filter((line) => line.trim().length > 0)
      .map((line) => {
        const [id, address, flags, master, , , , , ...slots] = line.trim().split(' ');
        return {
          id,
          port: Number(/:(\d+)@/.exec(address)?.[1]),
          flags: flags.split(','),
          masterId: master === '-' ? null : master,
          hasSlots: slots.some((slot) => !slot.startsWith('[')),
        };
      });
  }

  /** Until the cluster is whole again (every node ok, replicas in sync); a no-op when standalone. */
  async waitHealthy(timeoutMs = 30_000): Promise<void> {
    if (!this.cluster) return;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const states = await Promise.all(this.running().map((server) => cliAsync(server.port, 'CLUSTER', 'INFO').catch(() => '')));
      if (states.every((state) => state.includes('cluster_state:ok'))) return;
      if (Date.now() > deadline) throw new Error(`Redis Cluster not ok within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  async stop(): Promise<void> {
    if (this.cluster) await this.cluster.stop();
    else {
      await this.standalone!.stop();
      this.standalone!.cleanup();
    }
  }
}
