import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './redis-server.js';

/**
 * Real `nats-server -js` processes for tests, each on a free port with its own JetStream store
 * directory (`-sd`), stopped by pid: call {@link stopAllNatsServers} in afterAll; a process-exit
 * hook SIGKILLs whatever is left if a test run dies.
 */

const NATS_SERVER = existsSync('/usr/sbin/nats-server') ? '/usr/sbin/nats-server' : 'nats-server';
const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;

const running = new Set<NatsServer>();

export class NatsServer {
  private child: ChildProcess | null = null;
  private output = '';
  /** The JetStream store (kept across restarts unless {@link wipeStore}). */
  readonly storeDir: string;

  constructor(
    readonly port: number,
    private readonly extraArgs: string[] = [],
  ) {
    this.storeDir = mkdtempSync(join(tmpdir(), `nats-${port}-`));
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get isRunning(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Last lines nats-server printed (for failure messages). */
  get log(): string {
    return this.output.slice(-4000);
  }

  async start(): Promise<void> {
    if (this.isRunning) return;
    const args = ['-js', '-a', '127.0.0.1', '-p', String(this.port), '-sd', this.storeDir, ...this.extraArgs];
    const child = spawn(NATS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (chunk: Buffer): void => void (this.output = (this.output + chunk.toString()).slice(-16_000));
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.on('error', (error) => (this.output += `\nspawn error: ${error.message}`));
    this.child = child;
    running.add(this);
    const deadline = Date.now() + READY_TIMEOUT_MS;
    // Ready once the client port answers with INFO and JetStream says it started.
    while (!((await answersInfo(this.port)) && this.output.includes('Server is ready'))) {
      if (!this.isRunning) throw new Error(`nats-server on ${this.port} exited:\n${this.log}`);
      if (Date.now() > deadline) {
        await this.kill9();
        throw new Error(`nats-server on ${this.port} was not ready within ${READY_TIMEOUT_MS} ms:\n${this.log}`);
      }
      await sleep(50);
    }
  }

  /** SIGTERM (a clean shutdown), then SIGKILL if it has not exited within a bound. */
  async stop(): Promise<void> {
    await this.signal('SIGTERM', STOP_TIMEOUT_MS);
    if (this.isRunning) await this.signal('SIGKILL', STOP_TIMEOUT_MS);
    running.delete(this);
  }

  /** SIGKILL: the server vanishes mid-request, as in a crash. */
  async kill9(): Promise<void> {
    await this.signal('SIGKILL', STOP_TIMEOUT_MS);
    running.delete(this);
  }

  /** Stops it and starts it again on the same port; with `wipe` its JetStream store is lost meanwhile. */
  async restart({ wipe = false }: { wipe?: boolean } = {}): Promise<void> {
    await this.stop();
    if (wipe) this.wipeStore();
    await this.start();
  }

  /** Empties the store directory (while stopped): every stream and bucket is gone at the next start. */
  wipeStore(): void {
    rmSync(this.storeDir, { recursive: true, force: true });
  }

  /** Removes the store dir (after stop). */
  cleanup(): void {
    this.wipeStore();
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

/** Starts a `nats-server -js` on a free port and waits until it is ready. */
export async function startNatsServer(options: { port?: number; args?: string[] } = {}): Promise<NatsServer> {
  const server = new NatsServer(options.port ?? (await freePort()), options.args);
  await server.start();
  return server;
}

/** Stops every server this process started (by pid) and removes their stores. For afterAll. */
export async function stopAllNatsServers(): Promise<void> {
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

/** True when something on `port` greets with a NATS `INFO` line within a bound. */
function answersInfo(port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let greeting = '';
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('error', () => done(false));
    socket.on('data', (chunk) => {
      greeting += chunk.toString();
      if (greeting.includes('\r\n')) done(greeting.startsWith('INFO '));
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
