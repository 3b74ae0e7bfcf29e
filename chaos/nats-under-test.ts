import { startNatsCluster, startNatsServer } from '../test/support/nats-server.js';
import type { NatsCluster, NatsServer } from '../test/support/nats-server.js';

/** Names the chaos run's streams, buckets and subjects on its own servers (the sample's OCPP_NATS_PREFIX). */
const PREFIX = 'chaos';

/**
 * The NATS the nodes run on: one `nats-server -js`, or a JetStream cluster of 3 servers with every
 * stream and bucket replicated 3 times. Each server keeps its store across the restarts of a fault.
 */
export class NatsUnderTest {
  private constructor(
    readonly mode: 'single' | 'cluster',
    readonly single: NatsServer | null,
    readonly cluster: NatsCluster | null,
  ) {}

  static async start(mode: 'single' | 'cluster'): Promise<NatsUnderTest> {
    if (mode === 'single') return new NatsUnderTest(mode, await startNatsServer(), null);
    return new NatsUnderTest(mode, null, await startNatsCluster());
  }

  get label(): string {
    return this.cluster ? 'NATS JetStream cluster (3 servers, 3 replicas)' : 'NATS JetStream (one server)';
  }

  /** Environment that points a sample node at this NATS (every server, so a client fails over). */
  nodeEnv(): Record<string, string> {
    if (this.cluster) return { NATS_URL: this.cluster.urls.join(','), OCPP_NATS_PREFIX: PREFIX, OCPP_NATS_REPLICAS: '3' };
    return { NATS_URL: this.single!.url, OCPP_NATS_PREFIX: PREFIX };
  }

  get servers(): NatsServer[] {
    return this.cluster ? this.cluster.servers : [this.single!];
  }

  /** Until every server runs and, in a cluster, the meta leader is elected and replicated streams can be made. */
  async waitHealthy(timeoutMs = 30_000): Promise<void> {
    for (const server of this.servers) if (!server.isRunning) await server.start();
    await this.cluster?.waitReady(timeoutMs);
  }

  async stop(): Promise<void> {
    await Promise.all(this.servers.map((server) => server.stop()));
    for (const server of this.servers) server.cleanup();
  }
}
