import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { freePort } from './redis-server.js';

/**
 * Real `nats-server -js` processes for tests, each on a free port with its own JetStream store
 * directory (`-sd`), stopped by pid: call {@link stopAllNatsServers} in afterAll; a process-exit
 * hook SIGKILLs whatever is left if a test run dies. {@link startNatsCluster} joins three of them
 * into one JetStream cluster.
 */

const NATS_SERVER = existsSync('/usr/sbin/nats-server') ? '/usr/sbin/nats-server' : 'nats-server';
const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;
const START_MARK = '--- test support: nats-server started';

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
    this.output += `\n${START_MARK} pid ${child.pid}\n`;
    const deadline = Date.now() + READY_TIMEOUT_MS;
    // Ready once the client port answers with INFO and this start (not an earlier one) said it is ready.
    while (!((await answersInfo(this.port)) && this.output.slice(this.output.lastIndexOf(START_MARK)).includes('Server is ready'))) {
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

  /** SIGSTOP: the process stays and its connections stay open, but it answers nothing until {@link thaw}. */
  freeze(): void {
    if (this.child?.pid !== undefined && this.isRunning) process.kill(this.child.pid, 'SIGSTOP');
  }

  /** SIGCONT after {@link freeze}. */
  thaw(): void {
    if (this.child?.pid !== undefined && this.isRunning) process.kill(this.child.pid, 'SIGCONT');
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
    // A frozen server would not act on SIGTERM.
    this.thaw();
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

/** A JetStream cluster of real servers joined by routes: each its own name, store, client and monitoring port. */
export class NatsCluster {
  constructor(
    readonly servers: NatsServer[],
    private readonly monitorPorts: Map<NatsServer, number>,
    readonly names: Map<NatsServer, string>,
  ) {}

  /** Every client URL, for a client that should fail over between them. */
  get urls(): string[] {
    return this.servers.map((server) => server.url);
  }

  get running(): NatsServer[] {
    return this.servers.filter((server) => server.isRunning);
  }

  /** The server that leads the JetStream meta group now (from a running member's `/jsz`), or null during an election. */
  async metaLeader(): Promise<NatsServer | null> {
    for (const server of this.running) {
      const jsz = (await monitor(this.monitorPorts.get(server)!, '/jsz')) as { meta_cluster?: { leader?: string } } | null;
      const leader = jsz?.meta_cluster?.leader;
      if (leader) return this.byName(leader);
    }
    return null;
  }

  /** The server that leads `stream` now (JetStream's own answer), or null while it has none. */
  async streamLeader(stream: string): Promise<NatsServer | null> {
    const nc = await connect({ servers: this.running.map((server) => server.url), timeout: 2_000, reconnect: false });
    try {
      const info = await (await jetstreamManager(nc, { timeout: 2_000 })).streams.info(stream);
      return info.cluster?.leader ? this.byName(info.cluster.leader) : null;
    } finally {
      await nc.close();
    }
  }

  /** The name each node's connection reports in `/connz` (`connectionOptions.name`) → the server it is connected to. */
  async serverOfClient(clientName: string): Promise<NatsServer | null> {
    for (const server of this.running) {
      const connz = (await monitor(this.monitorPorts.get(server)!, '/connz?limit=1024')) as { connections?: Array<{ name?: string }> } | null;
      if (connz?.connections?.some((connection) => connection.name === clientName)) return server;
    }
    return null;
  }

  /**
   * Until every running member sees the same meta leader with every running peer current, and a
   * stream with one replica per running member can be created and deleted (so a node's first
   * `replicas: N` stream does not race the election).
   */
  async waitReady(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let problem = 'not checked yet';
    while (Date.now() < deadline) {
      problem = (await this.readiness()) ?? '';
      if (!problem) return;
      await sleep(200);
    }
    throw new Error(`NATS cluster not ready within ${timeoutMs} ms: ${problem}\n${this.running.map((server) => server.log.slice(-1500)).join('\n---\n')}`);
  }

  private async readiness(): Promise<string | null> {
    const running = this.running;
    const leaders = new Set<string>();
    for (const server of running) {
      const jsz = (await monitor(this.monitorPorts.get(server)!, '/jsz')) as {
        meta_cluster?: { leader?: string; replicas?: Array<{ name: string; current: boolean; offline?: boolean }> };
      } | null;
      const meta = jsz?.meta_cluster;
      if (!meta?.leader) return `${this.names.get(server)} sees no meta leader`;
      leaders.add(meta.leader);
      if (meta.leader === this.names.get(server)) {
        const current = new Set((meta.replicas ?? []).filter((peer) => peer.current && !peer.offline).map((peer) => peer.name));
        const lagging = running.filter((peer) => peer !== server && !current.has(this.names.get(peer)!));
        if (lagging.length > 0) return `peers ${lagging.map((peer) => this.names.get(peer)).join(',')} not current with the meta leader`;
      }
    }
    if (leaders.size !== 1) return `members disagree on the meta leader (${[...leaders].join(',')})`;
    try {
      const nc = await connect({ servers: running.map((server) => server.url), timeout: 2_000, reconnect: false });
      try {
        const jsm = await jetstreamManager(nc, { timeout: 5_000 });
        const name = `readiness-probe-${process.pid}`;
        await jsm.streams.add({ name, subjects: [`${name}.>`], num_replicas: running.length });
        await jsm.streams.delete(name);
      } finally {
        await nc.close();
      }
    } catch (error) {
      return `a stream with ${running.length} replicas could not be created: ${(error as Error).message}`;
    }
    return null;
  }

  private byName(name: string): NatsServer | null {
    return this.servers.find((server) => this.names.get(server) === name) ?? null;
  }
}

/**
 * Starts `size` (default 3) `nats-server -js` processes as one JetStream cluster: client, route and
 * monitoring ports free, `--cluster_name`, `--routes` to every member, each its own `server_name`
 * and store; resolves once a meta leader is elected and replicated streams can be created. A member
 * restarted (`restart()`, after `kill9()`) rejoins on the same ports with its store.
 */
export async function startNatsCluster(options: { size?: number; name?: string } = {}): Promise<NatsCluster> {
  const size = options.size ?? 3;
  const clusterName = options.name ?? `test-${process.pid}`;
  const members: Array<{ port: number; routePort: number; monitorPort: number; name: string }> = [];
  for (let i = 0; i < size; i++) {
    members.push({ port: await freePort(), routePort: await freePort(), monitorPort: await freePort(), name: `${clusterName}-n${i + 1}` });
  }
  const routes = members.map((member) => `nats://127.0.0.1:${member.routePort}`).join(',');
  const servers = members.map(
    (member) =>
      new NatsServer(member.port, [
        '--server_name', member.name,
        '--cluster_name', clusterName,
        '--cluster', `nats://127.0.0.1:${member.routePort}`,
        '--routes', routes,
        '-m', String(member.monitorPort),
      ]),
  );
  const cluster = new NatsCluster(
    servers,
    new Map(servers.map((server, i) => [server, members[i].monitorPort])),
    new Map(servers.map((server, i) => [server, members[i].name])),
  );
  try {
    await Promise.all(servers.map((server) => server.start()));
    await cluster.waitReady();
  } catch (error) {
    await Promise.all(servers.map((server) => server.kill9()));
    throw error;
  }
  return cluster;
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

/** GET on a server's monitoring port: the parsed JSON, or null when it does not answer (bounded). */
async function monitor(port: number, path: string): Promise<unknown> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(2_000) });
    return response.ok ? await response.json() : null;
  } catch {
    return null;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
