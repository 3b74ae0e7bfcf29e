import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { trackChild } from './processes.js';
import { freePort } from './redis.js';

/** Debian installs it in /usr/sbin, which is not on every user's PATH. */
export const NATS_SERVER = existsSync('/usr/sbin/nats-server') ? '/usr/sbin/nats-server' : 'nats-server';

/**
 * The bench's own `nats-server -js` (for ours-nats), on its own port with its own JetStream store,
 * counted among the bench's processes (its CPU is the bench's, not other work's). Same shape as
 * RedisServer: `stop` SIGKILLs it and drops its store (as a crash of a Redis without persistence
 * loses every key), `launch` starts it again, empty, on the same port.
 */
export class NatsServer {
  private child: ChildProcess | null = null;
  private storeDir: string | null = null;

  private constructor(
    readonly port: number,
    private readonly logDir: string,
  ) {}

  static async start(logDir: string): Promise<NatsServer> {
    const server = new NatsServer(await freePort(), logDir);
    await server.launch();
    return server;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  /** Starts nats-server with an empty store and resolves once it says it is ready (JetStream up). */
  async launch(): Promise<void> {
    this.storeDir = mkdtempSync(join(tmpdir(), `bench-nats-${this.port}-`));
    const child = spawn(NATS_SERVER, ['-js', '-a', '127.0.0.1', '-p', String(this.port), '-sd', this.storeDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    const log = createWriteStream(join(this.logDir, `nats-${this.port}.log`), { flags: 'a' });
    let ready = false;
    let spawnError: Error | null = null;
    // The tail of what it printed: the line may arrive split over two chunks.
    let tail = '';
    const watch = (chunk: Buffer): void => {
      tail = (tail + chunk.toString()).slice(-256);
      if (tail.includes('Server is ready')) ready = true;
    };
    child.stdout?.on('data', watch).pipe(log);
    child.stderr?.on('data', watch).pipe(log);
    child.once('error', (error) => (spawnError = error));
    trackChild(child);
    this.child = child;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (spawnError) throw new Error(`cannot start ${NATS_SERVER} (apt-get install nats-server): ${String(spawnError)}`);
      if (child.exitCode !== null) throw new Error(`nats-server exited (${child.exitCode}); see nats-${this.port}.log`);
      if (ready) return;
      await sleep(20);
    }
    throw new Error(`nats-server on ${this.port} was not ready within 10 s`);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** SIGKILL by pid, then its store is removed: the streams and buckets are gone, as after a crash with a lost disk. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      process.kill(child.pid, 'SIGKILL');
      await exited;
    }
    this.child = null;
    if (this.storeDir) rmSync(this.storeDir, { recursive: true, force: true });
    this.storeDir = null;
  }
}
