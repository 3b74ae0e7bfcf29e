import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { inboxOf } from '../../lib/cluster/address.js';
import { NatsTransport, type NatsTransportOptions } from '../../lib/nats/nats-transport.js';
import { ClusterUnavailableError } from '../../lib/protocol/errors.js';
import { NatsAnswerHolder } from '../support/nats-answer-holder.js';
import { startNatsCluster, startNatsServer, stopAllNatsServers, type NatsCluster, type NatsServer } from '../support/nats-server.js';
import { command, FakeLocalRegistry, Inbox, MemoryLogger } from '../support/redis-fixtures.js';
import { waitFor } from '../support/wait.js';

/**
 * connect() makes or opens the buckets, the node's record and its streams. On a fresh JetStream
 * cluster with 3 replicas the meta leader may answer a stream's creation after the request
 * timeout (having made it), and right after a server restart JetStream answers nothing for a
 * while: connect() tries again within `connectTimeoutMs` instead of failing the node's start.
 * Here the server answers nothing (frozen with SIGSTOP, on a connection made before), or its
 * answer to the stream's creation is held back past the timeout; each is undone when connect()
 * says it tries again (its warning), so no timing is guessed.
 */

const PREFIX = 'connect-retry';
const RETRYING = /^warn joining: .* failed \(.*\); attempt 2 in \d+ ms/;

/** A logger that runs `onRetry` once, at connect()'s first "attempt 2" warning. */
function retryLogger(onRetry: () => void): MemoryLogger {
  const logger = new MemoryLogger();
  let told = false;
  const warn = logger.warn.bind(logger);
  logger.warn = (message: string) => {
    warn(message);
    if (!told && RETRYING.test(`warn ${message}`)) {
      told = true;
      onRetry();
    }
  };
  return logger;
}

/** The node works: a command sent to its inbox reaches it, its presence is written and read back. */
async function expectUsable(node: NatsTransport, nodeId: string): Promise<void> {
  const inbox = new Inbox();
  await node.subscribe('node', inbox.handler);
  const sent = command(nodeId, `${nodeId}-CP`);
  await node.publish(inboxOf(nodeId), sent);
  await waitFor('the command to reach the node', () => inbox.ofKind('command').find((message) => message.id === sent.id));
  const { record } = await node.setPresence(`${nodeId}-CP`, 'ocpp1.6', Date.now());
  expect(await node.getPresence(`${nodeId}-CP`)).toEqual(record);
}

describe('NATS connect() while JetStream does not answer in time', () => {
  let server: NatsServer;
  const transports: NatsTransport[] = [];
  const connections: NatsConnection[] = [];
  const holders: NatsAnswerHolder[] = [];

  function transport(options: Partial<NatsTransportOptions> & Pick<NatsTransportOptions, 'logger'>): NatsTransport {
    const made = new NatsTransport({ prefix: PREFIX, requestTimeoutMs: 500, ...options });
    transports.push(made);
    return made;
  }

  async function connection(url: string): Promise<NatsConnection> {
    const nc = await connect({ servers: url });
    connections.push(nc);
    return nc;
  }

  beforeAll(async () => {
    server = await startNatsServer();
  }, 30_000);

  afterEach(() => server.thaw());

  afterAll(async () => {
    server.thaw();
    for (const holder of holders) holder.release();
    await Promise.all(transports.map((each) => each.disconnect().catch(() => undefined)));
    await Promise.all(connections.map((each) => each.close().catch(() => undefined)));
    await Promise.all(holders.map((holder) => holder.stop()));
    await stopAllNatsServers();
  });

  it('joins once JetStream answers again, and the node works', async () => {
    const nc = await connection(server.url);
    const logger = retryLogger(() => server.thaw());
    const node = transport({ connection: nc, logger, connectTimeoutMs: 20_000 });
    server.freeze();

    await node.connect('retry-thawed', new FakeLocalRegistry('retry-thawed'));

    const retries = logger.lines.filter((line) => RETRYING.test(line));
    expect(retries).toHaveLength(1);
    // Which JetStream step the freeze caught first depends on when it took hold (account info, or a
    // bucket made right after it): the warning names that step and says it got no answer in time.
    expect(retries[0]).toMatch(/: (the JetStream API \(account info\)|bucket \S+|stream \S+) failed \(no answer in time\)/);
    expect(node.isHealthy()).toBe(true);
    await expectUsable(node, 'retry-thawed');
  }, 30_000);

  it('finds the stream whose creation was answered too late, and reads it', async () => {
    const holder = new NatsAnswerHolder(server.port, 'stream_create_response');
    holders.push(holder);
    await holder.start();
    const nc = await connection(holder.url);
    const logger = retryLogger(() => holder.release());
    const node = transport({ connection: nc, logger, connectTimeoutMs: 20_000 });

    await node.connect('retry-late', new FakeLocalRegistry('retry-late'));

    const inboxStream = node.names.inboxStream('retry-late');
    const retries = logger.lines.filter((line) => RETRYING.test(line));
    expect(retries).toHaveLength(1);
    expect(retries[0]).toContain(`stream ${inboxStream} failed (no answer in time)`);
    // The held answer was to a creation the server did: the retry found that stream and kept it.
    const jsm = await jetstreamManager(nc);
    const names: string[] = [];
    for await (const name of jsm.streams.names()) names.push(name);
    expect(names.filter((name) => name === inboxStream)).toHaveLength(1);
    await expectUsable(node, 'retry-late');
  }, 30_000);

  it('gives up with ClusterUnavailableError naming what did not answer once connectTimeoutMs is spent', async () => {
    const nc = await connection(server.url);
    const logger = new MemoryLogger();
    const node = transport({ connection: nc, logger, connectTimeoutMs: 1_500 });
    server.freeze();

    const joining = node.connect('retry-given-up', new FakeLocalRegistry('retry-given-up'));

    await expect(joining).rejects.toThrow(ClusterUnavailableError);
    await expect(joining).rejects.toThrow(
      new RegExp(`^cluster transport unavailable: NATS at \\S*127\\.0\\.0\\.1:${server.port} did not answer the JetStream API \\(account info\\) \\(no answer in time\\); gave up after \\d+ attempt\\(s\\) within connectTimeoutMs 1500 ms$`),
    );
    expect(logger.lines.filter((line) => RETRYING.test(line))).toHaveLength(1);
  }, 30_000);

  it('stops trying at once when disconnected meanwhile', async () => {
    const nc = await connection(server.url);
    let node: NatsTransport | null = null;
    let disconnecting: Promise<void> | null = null;
    const logger = retryLogger(() => (disconnecting = node!.disconnect()));
    node = transport({ connection: nc, logger, connectTimeoutMs: 600_000 });
    server.freeze();

    const joining = node.connect('retry-stopped', new FakeLocalRegistry('retry-stopped'));

    await expect(joining).rejects.toThrow(new ClusterUnavailableError('connect() stopped: the adapter was disconnected while joining'));
    await disconnecting;
    expect(logger.lines.filter((line) => line.startsWith('warn joining:'))).toHaveLength(1);
    expect(node.healthIssue()).toBe('adapter is closed');
    await expect(node.connect('retry-stopped', new FakeLocalRegistry('retry-stopped'))).rejects.toThrow(/adapter is closed/);
  }, 30_000);

  it('does not try again when JetStream refuses (another stream holds the inbox subject)', async () => {
    const nc = await connection(server.url);
    const logger = new MemoryLogger();
    const node = transport({ connection: nc, logger, connectTimeoutMs: 20_000 });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'squatter', subjects: [node.names.inboxSubject('retry-refused')] });

    const joining = node.connect('retry-refused', new FakeLocalRegistry('retry-refused'));

    await expect(joining).rejects.toThrow(ClusterUnavailableError);
    await expect(joining).rejects.toThrow(/refused the request: .*subjects overlap/);
    expect(logger.lines.filter((line) => line.startsWith('warn joining:'))).toEqual([]);
  }, 30_000);

  it('on a connection it built: a failed connect() closes and drops it; connect() again builds a new one and joins', async () => {
    const admin = await connection(server.url);
    const node = transport({ servers: server.url, logger: new MemoryLogger(), connectTimeoutMs: 20_000 });
    const jsm = await jetstreamManager(admin);
    await jsm.streams.add({ name: 'squatter-own', subjects: [node.names.inboxSubject('retry-own')] });

    await expect(node.connect('retry-own', new FakeLocalRegistry('retry-own'))).rejects.toThrow(/subjects overlap/);
    expect(node.connection).toBeNull(); // closed and dropped, not kept

    await jsm.streams.delete('squatter-own');
    await node.connect('retry-own', new FakeLocalRegistry('retry-own'));
    expect(node.connection?.isClosed()).toBe(false);
    await expectUsable(node, 'retry-own');
  }, 30_000);
});

describe('NATS connect() on a 3-server JetStream cluster while its meta leader does not answer', () => {
  let cluster: NatsCluster;
  let node: NatsTransport | null = null;
  let nc: NatsConnection | null = null;
  let metaLeader: NatsServer | null = null;

  beforeAll(async () => {
    cluster = await startNatsCluster();
  }, 60_000);

  afterAll(async () => {
    metaLeader?.thaw();
    await node?.disconnect().catch(() => undefined);
    await nc?.close().catch(() => undefined);
    await stopAllNatsServers();
  });

  it('joins with 3 replicas once the meta leader answers again', async () => {
    metaLeader = await cluster.metaLeader();
    if (!metaLeader) throw new Error('the cluster has no meta leader');
    const other = cluster.servers.find((server) => server !== metaLeader)!;
    // Connected to a server that answers; JetStream's API waits on the meta leader.
    nc = await connect({ servers: other.url });
    const logger = retryLogger(() => metaLeader!.thaw());
    node = new NatsTransport({ connection: nc, prefix: PREFIX, replicas: 3, requestTimeoutMs: 500, connectTimeoutMs: 60_000, logger });
    metaLeader.freeze();

    await node.connect('retry-cluster', new FakeLocalRegistry('retry-cluster'));

    expect(logger.lines.filter((line) => RETRYING.test(line))).toHaveLength(1);
    const jsm = await jetstreamManager(nc);
    expect((await jsm.streams.info(node.names.inboxStream('retry-cluster'))).config.num_replicas).toBe(3);
    await expectUsable(node, 'retry-cluster');
  }, 90_000);
});
