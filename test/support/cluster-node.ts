import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket } from 'ws';
import type { EventAdapterInterface } from '../../lib/cluster/event-adapter.interface.js';
import { HandlerRegistry } from '../../lib/cluster/handler-registry.js';
import { SILENT_LOGGER } from '../../lib/cluster/logger.js';
import type { OcppClusterNode } from '../../lib/cluster/ocpp-cluster-node.js';
import { createNode } from '../../lib/create-node.js';
import type { OcppClusterOptions } from '../../lib/ocpp-cluster.options.js';
import { RedisAdapter, type RedisAdapterOptions } from '../../lib/redis/redis-adapter.js';
import { resolveOptions } from '../../lib/resolve-options.js';
import { withTimeout } from './wait.js';

/** A framework-free cluster node on a real transport, serving charge points on its own HTTP server. */
export interface RunningClusterNode<A extends EventAdapterInterface = RedisAdapter> {
  nodeId: string;
  node: OcppClusterNode;
  adapter: A;
  options: ReturnType<typeof resolveOptions>;
  http: Server;
  /** ws:// address of a charge point on this node. */
  urlOf(identity: string): string;
  stop(): Promise<void>;
}

export async function startClusterNode(
  redisUrl: string,
  nodeId: string,
  { adapter: adapterOptions = {}, node: nodeOptions = {} }: { adapter?: Partial<RedisAdapterOptions>; node?: OcppClusterOptions } = {},
): Promise<RunningClusterNode> {
  const adapter = new RedisAdapter({ url: redisUrl, nodeTtlMs: 1500, takeoverIntervalMs: 200, logger: SILENT_LOGGER, ...adapterOptions });
  return startClusterNodeOn(adapter, nodeId, nodeOptions);
}

/** The same node on a transport the caller built (NATS, a custom one). */
export async function startClusterNodeOn<A extends EventAdapterInterface>(adapter: A, nodeId: string, nodeOptions: OcppClusterOptions = {}): Promise<RunningClusterNode<A>> {
  const http = createServer();
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const port = (http.address() as AddressInfo).port;
  const options = resolveOptions({ nodeId, pingIntervalMs: 0, ...nodeOptions });
  const host = createNode({ options, adapter, handlers: new HandlerRegistry(), logger: SILENT_LOGGER });
  await host.start(http);
  const node = host.node;
  return {
    nodeId,
    node,
    adapter,
    options,
    http,
    urlOf: (identity) => `ws://127.0.0.1:${port}/ocpp/${identity}`,
    async stop() {
      await host.stop();
      http.closeAllConnections();
      await new Promise((resolve) => http.close(resolve));
    },
  };
}

/** A charge point that connected: resolves on 'open'; rejects with the HTTP status of a refused upgrade. */
export function openCharger(url: string, timeoutMs = 10_000, created?: (socket: WebSocket) => void): Promise<WebSocket> {
  const socket = new WebSocket(url, 'ocpp1.6');
  socket.on('error', () => undefined);
  created?.(socket);
  return withTimeout(
    new Promise<WebSocket>((resolve, reject) => {
      socket.once('open', () => resolve(socket));
      socket.once('unexpected-response', (_request, response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => (body += chunk.toString()));
        response.on('end', () => reject(new UpgradeRefusedError(response.statusCode ?? 0, body)));
      });
      socket.once('close', () => reject(new Error(`${url} closed before it opened`)));
    }),
    timeoutMs,
    `${url} to open`,
  );
}

/** A charge point that answers every call at once (`Accepted`); `received` lists each call as `action:payload`. */
export async function openAnsweringCharger(url: string): Promise<{ socket: WebSocket; received: string[] }> {
  const received: string[] = [];
  // Listens from before the socket opens: a CALL that arrives with the 101 is emitted before the await resumes.
  const answerCalls = (socket: WebSocket) =>
    socket.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as unknown[];
      if (frame[0] !== 2) return;
      received.push(`${String(frame[2])}:${JSON.stringify(frame[3])}`);
      socket.send(JSON.stringify([3, frame[1], { status: 'Accepted' }]));
    });
  const socket = await openCharger(url, undefined, answerCalls);
  return { socket, received };
}

export class UpgradeRefusedError extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
  ) {
    super(`upgrade refused with ${status}: ${body}`);
  }
}

/** Resolves once the socket is closed (at once if it already is). */
export function closed(socket: WebSocket, timeoutMs = 10_000): Promise<void> {
  if (socket.readyState === WebSocket.CLOSED) return Promise.resolve();
  return withTimeout(new Promise((resolve) => socket.once('close', () => resolve())), timeoutMs, 'the socket to close');
}
