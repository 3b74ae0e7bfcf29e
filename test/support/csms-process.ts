import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { ensureSampleBuilt, SAMPLE_MAIN } from './sample-build.js';
import { withTimeout } from './wait.js';

/** A sample CSMS node in its own process (dist/sample, rebuilt first when older than its sources). */
export class CsmsProcess {
  readonly output: string[] = [];
  readonly exited: Promise<number | null>;
  private constructor(
    readonly nodeId: string,
    private readonly child: ChildProcess,
    readonly port: number,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  get pid(): number {
    return this.child.pid!;
  }

  get httpUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}/ocpp`;
  }

  /** `nodeArgs`: options for node itself, before the script (e.g. `--import` of a test hook). */
  static async start(nodeId: string, env: Record<string, string>, nodeArgs: readonly string[] = []): Promise<CsmsProcess> {
    ensureSampleBuilt();
    const child = spawn(process.execPath, [...nodeArgs, SAMPLE_MAIN], {
      env: { ...process.env, NODE_OPTIONS: '', PORT: '0', OCPP_NODE_ID: nodeId, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output: string[] = [];
    const port = await withTimeout(
      new Promise<number>((resolve, reject) => {
        const onData = (chunk: Buffer) => {
          const text = chunk.toString();
          output.push(text);
          const match = /listening on http:\/\/localhost:(\d+)/.exec(text);
          if (match) resolve(Number(match[1]));
        };
        child.stdout!.on('data', onData);
        child.stderr!.on('data', (chunk: Buffer) => output.push(chunk.toString()));
        child.once('exit', (code) => reject(new Error(`node ${nodeId} exited with ${code} before listening:\n${output.join('')}`)));
      }),
      // Generous: a start is ~2.5 s of one core's work, but nodes start together and the machine may be busy.
      60_000,
      `node ${nodeId} to listen`,
    ).catch((error) => {
      child.kill('SIGKILL');
      throw error;
    });
    const csms = new CsmsProcess(nodeId, child, port);
    csms.output.push(...output);
    child.stdout!.on('data', (chunk: Buffer) => csms.output.push(chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => csms.output.push(chunk.toString()));
    return csms;
  }

  /**
   * Starts several nodes at once (a start is mostly one core's work, so two take little longer
   * than one); if any fails to start, the others are killed and the first failure is thrown.
   */
  static async startTogether(nodes: ReadonlyArray<readonly [nodeId: string, env: Record<string, string>]>): Promise<CsmsProcess[]> {
    const results = await Promise.allSettled(nodes.map(([nodeId, env]) => CsmsProcess.start(nodeId, env)));
    const failed = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (!failed) return results.map((result) => (result as PromiseFulfilledResult<CsmsProcess>).value);
    await Promise.all(results.map((result) => (result.status === 'fulfilled' ? result.value.kill9() : undefined)));
    throw failed.reason;
  }

  /** Graceful stop (SIGTERM: Nest shutdown hooks), then SIGKILL if it lingers. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    try {
      await withTimeout(this.exited, 10_000, `node ${this.nodeId} to exit`);
    } catch {
      // Worth knowing: a test that waits here spends 10 s for nothing (a drain with chargers still on?).
      console.warn(`node ${this.nodeId} did not exit within 10 s of SIGTERM: killing it`);
      this.child.kill('SIGKILL');
      await withTimeout(this.exited, 5_000, `node ${this.nodeId} to die`);
    }
  }

  /** Crash: no shutdown hooks, no clean-up in Redis. */
  async kill9(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    process.kill(this.pid, 'SIGKILL');
    await withTimeout(this.exited, 5_000, `node ${this.nodeId} to die`);
  }

  async http(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
    // A pooled keep-alive socket the server closed as the request went out fails with "other
    // side closed"; a GET is safe to send again (a POST is not: it may have reached a charger).
    for (let attempt = 1; ; attempt++) {
      try {
        const response = await fetch(`${this.httpUrl}${path}`, {
          method,
          headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        const text = await response.text();
        return { status: response.status, body: text ? JSON.parse(text) : undefined };
      } catch (error) {
        const alive = this.child.exitCode === null && this.child.signalCode === null;
        if (method !== 'GET' || !alive || attempt >= 3 || !(error instanceof TypeError)) throw error;
        console.warn(`GET ${path} on ${this.nodeId} failed (${String((error as { cause?: unknown }).cause ?? error.message)}); sending it again`);
      }
    }
  }
}
