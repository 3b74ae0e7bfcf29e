import { fork, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';

/**
 * Child processes of the bench: every one is recorded by pid and stopped by pid (politely over
 * IPC, then SIGKILL), also when the driver fails or is interrupted.
 */
const children = new Set<ChildProcess>();

export interface AppOptions {
  /** Label for logs and errors. */
  name: string;
  script: string;
  env?: Record<string, string | undefined>;
  nodeArgs?: string[];
  logDir: string;
  readyTimeoutMs?: number;
}

export class BenchApp {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve(value: any): void; reject(error: Error): void }>();
  private exited = false;
  private readonly exit: Promise<number | null>;
  readonly ready: Promise<Record<string, any>>;

  constructor(
    readonly name: string,
    private readonly child: ChildProcess,
    readyTimeoutMs: number,
  ) {
    this.exit = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exited = true;
        children.delete(child);
        const error = new Error(`${name} exited (${signal ?? code}) with requests outstanding`);
        for (const wait of this.waiting.values()) wait.reject(error);
        this.waiting.clear();
        resolve(code);
      });
    });
    this.ready = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} not ready after ${readyTimeoutMs} ms`)), readyTimeoutMs);
      child.on('message', (message: Record<string, any>) => {
        if (message.ready) {
          clearTimeout(timer);
          resolve(message);
          return;
        }
        const wait = this.waiting.get(message.id);
        if (!wait) return;
        this.waiting.delete(message.id);
        if (message.ok) wait.resolve(message.result);
        else wait.reject(new Error(`${name}: ${message.error}`));
      });
      void this.exit.then((code) => {
        clearTimeout(timer);
        reject(new Error(`${name} exited (${code}) before it was ready; see its log`));
      });
    });
    this.ready.catch(() => undefined);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  request<T = any>(type: string, args: Record<string, unknown> = {}, timeoutMs = 120_000): Promise<T> {
    if (this.exited) return Promise.reject(new Error(`${this.name} is not running`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`${this.name}: ${type} took longer than ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      this.child.send({ id, type, ...args });
    });
  }

  /** Asks the app to stop (it writes its CPU profile on a clean exit), then kills it by pid. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.exited) return;
    this.request('stop', {}, graceMs).catch(() => undefined);
    const timer = setTimeout(() => killPid(this.child.pid, 'SIGKILL'), graceMs);
    await this.exit;
    clearTimeout(timer);
  }

  kill(): void {
    if (!this.exited) killPid(this.child.pid, 'SIGKILL');
  }
}

export function startApp(options: AppOptions): BenchApp {
  const child = fork(options.script, [], {
    env: { ...process.env, ...options.env },
    execArgv: options.nodeArgs ?? [],
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    serialization: 'advanced',
  });
  children.add(child);
  const log = createWriteStream(join(options.logDir, `${options.name}.log`), { flags: 'a' });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  // BENCH_READY_TIMEOUT_MS: a machine busy with other work can take over a minute to start a node.
  return new BenchApp(options.name, child, options.readyTimeoutMs ?? Number(process.env.BENCH_READY_TIMEOUT_MS ?? 60_000));
}

export function trackChild(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
}

function killPid(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** The driver and every child still running (for telling the bench's CPU use from other work's). */
export function benchPids(): number[] {
  return [process.pid, ...[...children].map((child) => child.pid).filter((pid): pid is number => pid !== undefined)];
}

/** Last resort (driver failing or interrupted): SIGKILL every child still running, by pid. */
export function killAllChildren(): void {
  for (const child of children) killPid(child.pid, 'SIGKILL');
  children.clear();
}
