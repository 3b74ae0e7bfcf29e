import { afterEach, describe, expect, it } from '@jest/globals';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { handshake, type HandshakeOutcome } from '../support/handshake.js';
import type { AddressInfo } from 'node:net';
import { WebSocket } from 'ws';
import { HandlerRegistry } from '../../lib/cluster/handler-registry.js';
import { InMemoryAdapter, InMemoryBus } from '../../lib/cluster/in-memory-adapter.js';
import type { ClusterLogger } from '../../lib/cluster/logger.js';
import { createNode, type NodeHost } from '../../lib/create-node.js';
import { resolveOptions } from '../../lib/resolve-options.js';
import { InvalidOptionsError } from '../../lib/protocol/errors.js';

type Outcome = HandshakeOutcome;

const sockets: WebSocket[] = [];
const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const ws of sockets.splice(0)) ws.terminate();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function connect(url: string): Promise<Outcome> {
  return handshake(url, 'ocpp1.6', {}, (ws) => sockets.push(ws));
}

/** Busy for `ms` at once: nothing else runs meanwhile. */
function holdTheEventLoop(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // busy, as a node parsing thousands of handshakes and boot notifications is
  }
}

/** What a reconnect storm does to a node: every turn of the event loop takes `turnMs`, until stopped. */
function overload(turnMs: number): { stop(): void } {
  const timer = setInterval(() => holdTheEventLoop(turnMs), 0);
  return { stop: () => clearInterval(timer) };
}

const idle = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function startNode(maxEventLoopDelayMs: number | false): Promise<{ host: NodeHost; url: string; logged: string[] }> {
  const logged: string[] = [];
  const logger: ClusterLogger = {
    log: (message) => logged.push(message),
    warn: (message) => logged.push(message),
    error: (message) => logged.push(message),
    debug: () => undefined,
  };
  const http: Server = createServer();
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const options = resolveOptions({ nodeId: 'busy', pingIntervalMs: 0, maxEventLoopDelayMs });
  const host = createNode({ options, adapter: new InMemoryAdapter(new InMemoryBus()), handlers: new HandlerRegistry(), logger });
  await host.start(http);
  cleanups.push(async () => {
    await host.stop();
    await new Promise((resolve) => http.close(resolve));
  });
  return { host, url: `ws://127.0.0.1:${(http.address() as AddressInfo).port}/ocpp`, logged };
}

describe('admission while the event loop is behind (a reconnect storm)', () => {
  it('refuses new charge points with 503 and Retry-After while it lasts, keeps the open ones, and takes new ones once the loop caught up', async () => {
    const { host, url, logged } = await startNode(300);
    const first = await connect(`${url}/CP-OPEN`);
    expect(first.kind).toBe('open');

    const storm = overload(400);
    let refused: Outcome;
    try {
      await idle(1_000);
      refused = await connect(`${url}/CP-DURING`);
    } finally {
      storm.stop();
    }
    expect(refused).toMatchObject({ kind: 'rejected', status: 503, body: 'overloaded (event loop more than 300 ms behind)' });
    expect((refused as { headers: IncomingHttpHeaders }).headers['retry-after']).toBe('1');
    expect(logged).toContain('refusing new charge points with 503: overloaded (event loop more than 300 ms behind)');
    // Readiness does not follow overload: a busy node must stay in the load balancer.
    expect(host.node.acceptance()).toEqual({ ok: true });
    expect((first as { ws: WebSocket }).ws.readyState).toBe(WebSocket.OPEN);
    expect(host.node.isConnectedLocally('CP-OPEN')).toBe(true);

    await idle(200);
    const after = await connect(`${url}/CP-AFTER`);
    expect(after.kind).toBe('open');
    expect(logged).toContain('accepting new charge points again');
    expect(host.node.listLocal().map((charger) => charger.identity).sort()).toEqual(['CP-AFTER', 'CP-OPEN']);
  });

  it('one long stall (a SIGSTOP, a VM pause, start-up work) is not overload: the upgrade right after it is taken', async () => {
    const { url, logged } = await startNode(300);
    holdTheEventLoop(1_500);
    expect((await connect(`${url}/CP-AFTER-STALL`)).kind).toBe('open');
    expect(logged.filter((line) => line.includes('overloaded'))).toEqual([]);
  });

  it('with maxEventLoopDelayMs: false it takes charge points however late the loop runs', async () => {
    const { url } = await startNode(false);
    const storm = overload(400);
    try {
      await idle(1_000);
      expect((await connect(`${url}/CP-LATE`)).kind).toBe('open');
    } finally {
      storm.stop();
    }
  });

  it('checks the option', () => {
    for (const bad of [0, -5, 1.5, '1000', true]) {
      expect(() => resolveOptions({ maxEventLoopDelayMs: bad as never })).toThrow(InvalidOptionsError);
    }
    expect(resolveOptions({}).maxEventLoopDelayMs).toBe(1_000);
  });
});
