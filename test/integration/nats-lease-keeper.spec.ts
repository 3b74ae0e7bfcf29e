import { performance } from 'node:perf_hooks';
import { jetstream } from '@nats-io/jetstream';
import { Kvm, type KV, type KvEntry } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { NatsTransport } from '../../lib/nats/nats-transport.js';
import { NatsNodeLiveness, parseNodeRecord, type NatsLeaseEvent } from '../../lib/nats/node-liveness.js';
import { token } from '../../lib/nats/nats-names.js';
import { startNatsServer, stopAllNatsServers, type NatsServer } from '../support/nats-server.js';
import { freePort } from '../support/redis-server.js';
import { MemoryLogger } from '../support/redis-fixtures.js';
import { waitFor } from '../support/wait.js';

/**
 * The NATS lease keeper thread (lib/nats/lease-keeper.worker.mjs, lib/cluster/lease-keeper-thread.ts)
 * on a real nats-server: this test's own main thread is made busy (a synchronous loop) for three
 * TTLs, so nothing on it can beat. Readers judge a node dead once its record's revision has not
 * changed for a TTL; the bucket here keeps every revision (history), so the test reads, after the
 * stall, whether any gap between two heartbeats reached a TTL — what a survivor would have seen.
 */

const TTL_MS = 1500;
const STALL_MS = 3 * TTL_MS;
const BUCKET = 'keeper-test-nodes';

function busyFor(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // no timer, no socket read on this thread
  }
}

describe('NATS lease keeper thread', () => {
  let server: NatsServer;
  let monitorPort: number;
  let nc: NatsConnection;
  let kv: KV;
  const livenesses: NatsNodeLiveness[] = [];

  beforeAll(async () => {
    monitorPort = await freePort();
    server = await startNatsServer({ args: ['-m', String(monitorPort)] });
    nc = await connect({ servers: server.url });
    // History: every heartbeat stays readable, with the server's time of it.
    kv = await new Kvm(jetstream(nc)).create(BUCKET, { history: 64 });
  }, 60_000);
  afterAll(async () => {
    await nc?.close();
    await stopAllNatsServers();
  });
  afterEach(async () => {
    for (const liveness of livenesses.splice(0)) {
      await liveness.release(true).catch(() => undefined);
      liveness.abandon();
    }
  });

  async function startLiveness(nodeId: string, stallToleranceMs: number): Promise<{ liveness: NatsNodeLiveness; events: NatsLeaseEvent[]; logger: MemoryLogger }> {
    const events: NatsLeaseEvent[] = [];
    const logger = new MemoryLogger();
    const liveness = new NatsNodeLiveness({
      kv: () => kv,
      nodeId,
      ttlMs: TTL_MS,
      logger,
      onLeaseEvent: (event) => events.push(event),
      stallToleranceMs,
      // As the transport hands it over: plain data, with a name an operator can tell apart.
      keeper: { bucket: BUCKET, requestTimeoutMs: 2000, connection: () => ({ servers: server.url, name: `keeper-test ${nodeId}:lease-keeper` }) },
    });
    livenesses.push(liveness);
    await liveness.acquire();
    liveness.start();
    return { liveness, events, logger };
  }

  /** Heartbeats of `nodeId` since `fromRevision` (server times), and the longest gap between two, ending now. */
  async function beatsSince(nodeId: string, fromRevision: number): Promise<{ entries: KvEntry[]; longestGapMs: number }> {
    const entries: KvEntry[] = [];
    for await (const entry of await kv.history({ key: token(nodeId) })) if (entry.revision >= fromRevision) entries.push(entry);
    let longestGapMs = 0;
    for (let i = 1; i < entries.length; i++) longestGapMs = Math.max(longestGapMs, entries[i].created.getTime() - entries[i - 1].created.getTime());
    const last = entries.at(-1);
    if (last) longestGapMs = Math.max(longestGapMs, Date.now() - last.created.getTime());
    return { entries, longestGapMs };
  }

  async function connectionNames(): Promise<string[]> {
    const response = await fetch(`http://127.0.0.1:${monitorPort}/connz`);
    const body = (await response.json()) as { connections?: Array<{ name?: string }> };
    return (body.connections ?? []).map((connection) => connection.name ?? '');
  }

  async function revisionOf(nodeId: string): Promise<number> {
    return (await kv.get(token(nodeId)))!.revision;
  }

  it('beats while the main thread is busy for three TTLs: no gap a survivor could take for death, no suspension', async () => {
    const { liveness, events, logger } = await startLiveness('keep-1', 30_000);
    const from = await revisionOf('keep-1');

    busyFor(STALL_MS);
    // Checked before this thread's timers run: this thread's last answered beat is three TTLs old,
    // only the keeper's heartbeats can prove the lease now.
    expect(liveness.hasLease()).toBe(true);

    const { entries, longestGapMs } = await beatsSince('keep-1', from);
    expect(longestGapMs).toBeLessThan(TTL_MS);
    const keeperBeats = entries.map((entry) => parseNodeRecord(entry)).filter((record) => record?.thread === 'lease-keeper');
    expect(keeperBeats.length).toBeGreaterThanOrEqual(2);
    expect(keeperBeats.every((record) => record!.state === 'alive')).toBe(true);

    await waitFor('the lease timer to run', () => logger.lines.some((line) => line.includes('the lease keeper thread kept the lease meanwhile')));
    // The event loop's own heartbeat takes over again on the keeper's revision.
    const afterStall = await revisionOf('keep-1');
    await waitFor('a heartbeat of the event loop after the stall', async () => (await revisionOf('keep-1')) > afterStall + 1);
    expect(events).toEqual([]);
    expect(liveness.hasLease()).toBe(true);
    expect(liveness.keptThroughStalls).toBe(1);
    expect(await connectionNames()).toContain('keeper-test keep-1:lease-keeper');

    // A clean leave right after: the record goes, whichever thread wrote it last.
    await liveness.release(true);
    expect(parseNodeRecord(await kv.get(token('keep-1')))).toBeNull();
  }, 60_000);

  it('stays out of the way while the event loop beats on time: every heartbeat is the loop’s own', async () => {
    await startLiveness('quiet-1', 30_000);
    const from = await revisionOf('quiet-1');
    await new Promise((resolve) => setTimeout(resolve, 2 * TTL_MS));
    const { entries } = await beatsSince('quiet-1', from);
    expect(entries.length).toBeGreaterThanOrEqual(4);
    expect(entries.map((entry) => parseNodeRecord(entry)?.thread ?? 'event loop')).toEqual(entries.map(() => 'event loop'));
  }, 60_000);

  it('lets the record go silent when the main thread stays busy past the tolerance (a hung thread): the lease is suspended', async () => {
    const { liveness, events } = await startLiveness('hung-1', 500);
    const from = await revisionOf('hung-1');

    busyFor(STALL_MS);
    expect(liveness.hasLease()).toBe(false);
    const { longestGapMs } = await beatsSince('hung-1', from);
    expect(longestGapMs).toBeGreaterThanOrEqual(TTL_MS);
    await waitFor('the suspension', () => events.includes('suspended'));
  }, 60_000);

  it('never writes over a survivor’s fence: a node taken over during the stall stays taken over', async () => {
    const { liveness, events } = await startLiveness('fenced-1', 30_000);
    const entry = (await kv.get(token('fenced-1')))!;
    const record = parseNodeRecord(entry)!;
    // A survivor's fence, as NatsNodeLoss writes it: a compare-and-set on the revision it judged.
    await kv.update(token('fenced-1'), JSON.stringify({ ...record, state: 'taken-over', by: 'survivor' }), entry.revision);

    busyFor(STALL_MS);
    const { entries } = await beatsSince('fenced-1', entry.revision + 1);
    expect(entries.map((each) => parseNodeRecord(each)?.state)).toEqual(['taken-over']);
    await waitFor('the takeover to be noticed', () => events.includes('takenOver'));
    expect(liveness.hasLease()).toBe(false);
    expect(parseNodeRecord(await kv.get(token('fenced-1')))?.state).toBe('taken-over');
  }, 60_000);

  it('connects from the transport’s settings: its own (servers, credentials) or the connection the user gave it', async () => {
    const authMonitor = await freePort();
    const guarded = await startNatsServer({ args: ['-m', String(authMonitor), '--user', 'csms', '--pass', 'secret'] });
    const userConnection = await connect({ servers: guarded.url, user: 'csms', pass: 'secret', name: 'user-built' });
    const transports = [
      new NatsTransport({ servers: guarded.url, connectionOptions: { user: 'csms', pass: 'secret', name: 'own-built' }, prefix: 'KA', logger: new MemoryLogger() }),
      new NatsTransport({ connection: userConnection, prefix: 'KB', logger: new MemoryLogger() }),
    ];
    try {
      await transports[0].connect('own-1', { localPresence: () => [] });
      await transports[1].connect('user-1', { localPresence: () => [] });
      const names = async (): Promise<string[]> => {
        const body = (await (await fetch(`http://127.0.0.1:${authMonitor}/connz`)).json()) as { connections?: Array<{ name?: string }> };
        return (body.connections ?? []).map((connection) => connection.name ?? '');
      };
      // Only an authenticated connection is listed: the copied credentials worked.
      await waitFor('both keepers to connect', async () => {
        const listed = await names();
        return listed.includes('own-built:lease-keeper') && listed.includes('user-built:lease-keeper');
      });
    } finally {
      for (const transport of transports) await transport.disconnect();
      await userConnection.close();
    }
  }, 60_000);
});
