import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { OcppClusterModule, OcppClusterService } from '../../lib/index.js';
import type { OcppClusterOptions } from '../../lib/index.js';
import { OCPP_CLUSTER_NODE, OCPP_NODE_HOST } from '../../lib/transport.js';
import type { NodeHost, OcppClusterNode } from '../../lib/transport.js';
// The sample's answers (without its connection log: 10,000 log lines would be measured too).
import { StationHandlers } from '../../sample/station.handlers.js';
import { runCalls } from './call-runner.js';
import { pacedCalls, type PacedCallOptions } from './paced-calls.js';
import { announceReady, measureMemory, serveIpc, windowProfiler } from './ipc.js';

/**
 * One node of our CSMS for the bench, as an application would run it: a Nest app with the
 * module on its HTTP server. Environment: BENCH_NODE_ID, BENCH_REDIS_URL (unset = in memory),
 * BENCH_REDIS_CLUSTER_NODES (`host:port,...`: a Redis Cluster instead, as the sample's
 * REDIS_CLUSTER_NODES), BENCH_NATS_URL (the NatsTransport instead of Redis), BENCH_STRICT (1/0),
 * BENCH_RATE_LIMIT (off | default), BENCH_STREAM_MAXLEN (RedisAdapter streamMaxLen; NatsTransport
 * inboxMaxMessages), BENCH_NODE_TTL_MS (the Redis liveness TTL), BENCH_BACKLOG (listen backlog), BENCH_LOG=1
 * (the library's warnings and errors in the node's log).
 */

function redisFromEnv(env: NodeJS.ProcessEnv, streamMaxLen: number | undefined): OcppClusterOptions['redis'] {
  const nodeTtlMs = env.BENCH_NODE_TTL_MS ? Number(env.BENCH_NODE_TTL_MS) : undefined;
  const clusterNodes = env.BENCH_REDIS_CLUSTER_NODES?.split(',').filter((node) => node.length > 0);
  if (clusterNodes && clusterNodes.length > 0) return { cluster: { nodes: clusterNodes }, streamMaxLen, nodeTtlMs };
  return env.BENCH_REDIS_URL ? { url: env.BENCH_REDIS_URL, streamMaxLen, nodeTtlMs } : undefined;
}

async function optionsFromEnv(env: NodeJS.ProcessEnv): Promise<OcppClusterOptions> {
  const streamMaxLen = env.BENCH_STREAM_MAXLEN ? Number(env.BENCH_STREAM_MAXLEN) : undefined;
  return {
    nodeId: env.BENCH_NODE_ID || 'bench',
    path: '/ocpp',
    redis: redisFromEnv(env, streamMaxLen),
    adapter: env.BENCH_NATS_URL ? await natsTransport(env.BENCH_NATS_URL, env.BENCH_NODE_ID || 'bench', streamMaxLen) : undefined,
    strictMode: env.BENCH_STRICT !== '0',
    rateLimit: env.BENCH_RATE_LIMIT === 'off' ? false : undefined,
    // BENCH_LOG=1: the library's warnings and errors (leases, takeovers, fencing) on stderr, in the run's log dir.
    logging: env.BENCH_LOG === '1',
  };
}

/** Loaded only for ours-nats: the other runs (memory above all) do not load the NATS client. */
async function natsTransport(url: string, nodeId: string, inboxMaxMessages: number | undefined): Promise<OcppClusterOptions['adapter']> {
  const { NatsTransport } = await import('../../lib/nats/index.js');
  return new NatsTransport({ servers: url, connectionOptions: { name: `ocpp-bench:${nodeId}` }, inboxMaxMessages });
}

async function main(): Promise<void> {
  const options = await optionsFromEnv(process.env);
  @Module({
    imports: [OcppClusterModule.forRoot(options)],
    providers: [StationHandlers],
  })
  class BenchAppModule {}

  const app = await NestFactory.create(BenchAppModule, { logger: process.env.BENCH_LOG === '1' ? ['warn', 'error'] : false, abortOnError: false });
  // Every bench server listens with the same backlog (BENCH_BACKLOG): with Node's default 511 a
  // storm of 5,000 connections per node overflows the accept queue and the kernel's SYN retries
  // (1 s, 3 s, 7 s, 15 s...) decide the result instead of the server.
  // Nest passes extra listen() arguments through to http.Server#listen; its typing only lacks them.
  const listen = app as unknown as { listen(port: number, host: string, backlog: number): Promise<unknown> };
  await listen.listen(0, '127.0.0.1', Number(process.env.BENCH_BACKLOG ?? 511));
  const port = (app.getHttpServer().address() as AddressInfo).port;
  const service = app.get(OcppClusterService);
  const node = app.get<OcppClusterNode>(OCPP_CLUSTER_NODE);
  let identities: string[] = [];
  /** Identities not yet seen in presence since the last reset (polling only these keeps the probe light). */
  let missing: string[] = [];

  serveIpc({
    memory: async () => ({ ...(await measureMemory()), connections: node.listLocal().length }),
    /** Now on the clock of V8's CPU profiles (µs), to cut a profile to the measured window. */
    mark: () => Number(process.hrtime.bigint() / 1000n),
    localCount: () => app.get<NodeHost>(OCPP_NODE_HOST).gateway.connectionCount,
    setIdentities: (message) => {
      identities = message.identities;
      missing = [...identities];
      return identities.length;
    },
    resetPresence: () => {
      missing = [...identities];
      return missing.length;
    },
    /** How many of the identities set before were seen in the cluster's presence (as this node sees it) since the last reset. */
    presenceCount: async () => {
      const found = await node.transport.getPresenceBatch(missing);
      missing = missing.filter((identity) => !found.has(identity));
      return identities.length - missing.length;
    },
    call: async (message) => service.sendToClient(message.identity, message.action, message.payload, { timeoutMs: message.timeoutMs }),
    crossNodeCalls: (message) =>
      runCalls((identity) => service.sendToClient(identity, message.action, message.payload, { timeoutMs: message.timeoutMs }), {
        identities: message.identities,
        total: message.total,
        concurrency: message.concurrency,
        warmup: message.warmup,
      }),
    broadcastBatch: async (message) => {
      const startedAt = performance.now();
      const outcomes = await service.broadcastBatch(identities, message.action, message.payload, { timeoutMs: message.timeoutMs });
      const durationMs = performance.now() - startedAt;
      const fulfilled = outcomes.filter((outcome) => outcome.status === 'fulfilled').length;
      const errorKinds: Record<string, number> = {};
      for (const outcome of outcomes) {
        if (outcome.status !== 'rejected') continue;
        const kind = String((outcome.error as { code?: string })?.code ?? outcome.error?.name);
        errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
      }
      return { durationMs, outcomes: outcomes.length, fulfilled, rejected: outcomes.length - fulfilled, errorKinds };
    },
    /** Process CPU time (µs, user + system) and sockets held: the soak's CPU per 1,000 chargers. */
    cpu: () => ({ ...process.cpuUsage(), connections: node.listLocal().length }),
    /**
     * Which of `identities` the cluster's presence places on a node other than `notOn` (the soak
     * asks only for those not found yet, so the probe gets lighter as stations come back).
     */
    presenceElsewhere: async (message) => {
      const found = await node.transport.getPresenceBatch(message.identities as string[]);
      const elsewhere: string[] = [];
      for (const record of found.values()) if (record.nodeId !== message.notOn) elsewhere.push(record.identity);
      return elsewhere;
    },
    /** Whether the cluster still counts `nodeId` alive (its liveness key), as this node sees it. */
    nodeAlive: (message) => node.transport.isNodeAlive(message.nodeId as string),
    /** What this node's takeovers of lost nodes did so far. */
    takeovers: () => node.nodeLossCounters(),
    ...windowProfiler(),
    /** The soak's cross-node traffic: `ratePerSecond` calls to random identities for `durationMs`. */
    pacedCalls: (message) => pacedCalls((identity) => service.sendToClient(identity, message.action, message.payload, { timeoutMs: message.timeoutMs }), message as PacedCallOptions),
    stop: async () => {
      setTimeout(() => process.exit(0), 5000).unref();
      await app.close();
      setImmediate(() => process.exit(0));
      return true;
    },
  });
  announceReady({ port });
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
