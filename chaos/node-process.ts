import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const SAMPLE_MAIN = fileURLToPath(new URL('../sample/main.js', import.meta.url));
/** SIGUSR2 keeps the node's main thread busy for its STALL_MS (the sources' hook, as the tests load it). */
const STALL_HOOK = fileURLToPath(new URL('../../test/support/stall-on-signal.mjs', import.meta.url));
/** As in the tests: a node starting on a busy 2-core machine may take this long to listen. */
const LISTEN_TIMEOUT_MS = 60_000;

export type NodeState = 'up' | 'frozen' | 'stopping' | 'down';

/**
 * One sample CSMS node (`dist/sample/main.js`) in its own process, on a fixed port so that a
 * restart with the same node id serves the same URL. Output goes to a log file.
 */
export class NodeProcess {
  private child: ChildProcess | null = null;
  private exitPromise: Promise<void> = Promise.resolve();
  state: NodeState = 'down';
  /** Output of the last start attempt (for failure messages). */
  lastOutput = '';

  constructor(
    readonly nodeId: string,
    readonly port: number,
    private readonly env: Record<string, string>,
    private readonly logFile: string,
  ) {}

  get httpUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}/ocpp`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts the process and resolves once it listens; rejects (after killing it) if it exits or never listens. */
  async start(): Promise<void> {
    if (!existsSync(SAMPLE_MAIN)) throw new Error(`${SAMPLE_MAIN} is missing: run "npm run build:sample" first`);
    const child = spawn(process.execPath, ['--import', STALL_HOOK, SAMPLE_MAIN], {
      env: { ...process.env, NODE_OPTIONS: '', PORT: String(this.port), OCPP_NODE_ID: this.nodeId, ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this.exitPromise = new Promise((resolve) => child.once('exit', () => resolve()));
    this.lastOutput = '';
    const log = (chunk: Buffer) => {
      const text = chunk.toString();
      this.lastOutput = (this.lastOutput + text).slice(-4000);
      appendFileSync(this.logFile, text);
    };
    appendFileSync(this.logFile, `\n=== ${new Date().toISOString()} start pid ${child.pid} ===\n`);
    child.stderr!.on('data', log);
    let timer: NodeJS.Timeout | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout!.on('data', (chunk: Buffer) => {
          log(chunk);
          if (this.lastOutput.includes('listening on http://')) resolve();
        });
        child.once('exit', (code, signal) => reject(new Error(`${this.nodeId} exited (${code ?? signal}) before listening: ${this.lastOutput.trim().split('\n').slice(-3).join(' | ')}`)));
        timer = setTimeout(() => reject(new Error(`${this.nodeId} did not listen within ${LISTEN_TIMEOUT_MS} ms`)), LISTEN_TIMEOUT_MS);
      });
      this.state = 'up';
    } catch (error) {
      await this.kill9();
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  async kill9(): Promise<void> {
    this.signal('SIGKILL');
    await this.exitPromise;
    this.state = 'down';
  }

  freeze(): void {
    this.signal('SIGSTOP');
    this.state = 'frozen';
  }

  thaw(): void {
    this.signal('SIGCONT');
    this.state = 'up';
  }

  /** Its main thread busy for the STALL_MS of its environment (an overload, a long GC); the process and its other threads run on. */
  stallMainThread(): void {
    this.signal('SIGUSR2');
  }

  /** SIGTERM (drain); resolves true if it exited within `boundMs`, else SIGKILLs it and resolves false. */
  async terminate(boundMs: number): Promise<boolean> {
    if (!this.running) return true;
    this.state = 'stopping';
    this.signal('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const exited = await Promise.race([
      this.exitPromise.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), boundMs))),
    ]);
    clearTimeout(timer);
    if (!exited) await this.kill9();
    this.state = 'down';
    return exited;
  }

  /** Resident set size from /proc (the sample registers no process metrics). */
  rssBytes(): number | null {
    if (!this.running || this.pid === undefined) return null;
    try {
      const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'));
      return match ? Number(match[1]) * 1024 : null;
    } catch {
      return null;
    }
  }

  private signal(signal: NodeJS.Signals): void {
    if (!this.running || this.pid === undefined) return;
    try {
      process.kill(this.pid, signal);
    } catch {
      // already gone
    }
  }
}
