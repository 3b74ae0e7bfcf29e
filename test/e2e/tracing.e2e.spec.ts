import 'reflect-metadata';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { Redis } from 'ioredis';
import { RedisKeys } from '../../lib/redis/redis-keys.js';
import { chargePoint, connectedChargePoint } from '../support/charge-point.js';
import type { RpcClient } from '../support/charge-point.js';
import { CsmsProcess } from '../support/csms-process.js';
import { startRedisServer, stopAllRedisServers } from '../support/redis-server.js';
import { waitFor, withTimeout } from '../support/wait.js';

/**
 * OpenTelemetry across nodes: two sample processes write their finished spans as JSON lines
 * (OCPP_TRACE_FILE); the test is the operator's client, with the SDK's in-memory exporter, and
 * sends its trace context in `traceparent`. One trace must run from the client through node A's
 * HTTP handler and call, Redis, node B's command and the charger, and back.
 */

interface SpanLine {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: Record<string, unknown>;
  status: { code: number };
}

const SERVER = 1;
const CLIENT = 2;
const PRODUCER = 3;
const CONSUMER = 4;

describe('OpenTelemetry traces across nodes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ocpp-trace-'));
  const files = { a: join(dir, 'a.jsonl'), b: join(dir, 'b.jsonl') };
  let a: CsmsProcess;
  let b: CsmsProcess;
  let charger: RpcClient;
  let admin: Redis;
  const later: RpcClient[] = [];

  beforeAll(async () => {
    const redis = await startRedisServer();
    admin = new Redis(redis.url);
    const env = (file: string) => ({ REDIS_URL: redis.url, OCPP_TRACE_FILE: file });
    [a, b] = await CsmsProcess.startTogether([
      ['trace-a', env(files.a)],
      ['trace-b', env(files.b)],
    ]);
    charger = await connectedChargePoint(b.wsUrl, 'TRACED-1');
    charger.handle('DataTransfer', ({ params }) => ({ status: 'Accepted', data: params.data }));
  }, 120_000);

  afterAll(async () => {
    await Promise.all([charger, ...later].map((client) => client?.close({ force: true }).catch(() => undefined)));
    admin?.disconnect();
    await Promise.all([a?.stop(), b?.stop()]);
    await stopAllRedisServers();
    rmSync(dir, { recursive: true, force: true });
  });

  const spansOf = (file: string): SpanLine[] =>
    existsSync(file)
      ? readFileSync(file, 'utf8')
          .split('\n')
          .filter((line) => line.length > 0)
          .map((line) => JSON.parse(line) as SpanLine)
      : [];

  it('one trace: client → HTTP handler on A → A publishes → B runs it → charger → B replies → A receives', async () => {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    const root = provider.getTracer('operator').startSpan('operator request');
    const { traceId, spanId } = root.spanContext();

    await waitFor('TRACED-1 on node B as seen from A', async () => (await a.http('GET', '/chargers/TRACED-1')).body?.nodeId === 'trace-b');
    const answer = await a.http('POST', '/chargers/TRACED-1/calls/DataTransfer', { vendorId: 'trace', data: 'hello' }, { traceparent: `00-${traceId}-${spanId}-01` });
    root.end();
    expect(answer).toEqual({ status: 200, body: { result: { status: 'Accepted', data: 'hello' } } });
    expect(exporter.getFinishedSpans().map((span) => span.name)).toEqual(['operator request']);

    const inTrace = (file: string) => spansOf(file).filter((span) => span.traceId === traceId);
    const onA = await waitFor('A to write its spans of the call', (): SpanLine[] | null => {
      const spans = inTrace(files.a);
      return spans.some((span) => span.name === 'ocpp.cluster.reply.receive') && spans.some((span) => span.name.startsWith('POST ')) ? spans : null;
    });
    const onB = await waitFor('B to write its spans of the call', (): SpanLine[] | null => {
      const spans = inTrace(files.b);
      return spans.some((span) => span.name === 'ocpp.cluster.reply') ? spans : null;
    });
    const one = (spans: SpanLine[], name: string): SpanLine => {
      const found = spans.filter((span) => span.name === name);
      expect(found.map((span) => span.name)).toEqual([name]);
      return found[0];
    };

    const http = one(onA, 'POST /chargers/TRACED-1/calls/DataTransfer');
    const send = one(onA, 'ocpp.send DataTransfer');
    const publish = one(onA, 'ocpp.cluster.publish');
    const command = one(onB, 'ocpp.cluster.command DataTransfer');
    const chargerCall = one(onB, 'ocpp.charger.call DataTransfer');
    const reply = one(onB, 'ocpp.cluster.reply');
    const received = one(onA, 'ocpp.cluster.reply.receive');

    // The chain of parents, across both processes.
    expect(http).toMatchObject({ parentSpanId: spanId, kind: SERVER });
    expect(send).toMatchObject({ parentSpanId: http.spanId, kind: CLIENT, attributes: { 'ocpp.identity': 'TRACED-1', 'ocpp.node': 'trace-a', 'ocpp.route': 'remote' } });
    expect(publish).toMatchObject({ parentSpanId: send.spanId, kind: PRODUCER, attributes: { 'ocpp.target_node': 'trace-b' } });
    expect(command).toMatchObject({ parentSpanId: publish.spanId, kind: CONSUMER, attributes: { 'ocpp.node': 'trace-b', 'ocpp.origin_node': 'trace-a', 'ocpp.outcome': 'result' } });
    expect(chargerCall).toMatchObject({ parentSpanId: command.spanId, kind: CLIENT, attributes: { 'ocpp.identity': 'TRACED-1', 'ocpp.protocol': 'ocpp1.6' } });
    expect(reply).toMatchObject({ parentSpanId: command.spanId, kind: PRODUCER, attributes: { 'ocpp.target_node': 'trace-a' } });
    expect(received).toMatchObject({ parentSpanId: reply.spanId, kind: CONSUMER, attributes: { 'ocpp.from_node': 'trace-b' } });
    // Nothing failed along the way (status UNSET = 0).
    expect([http, send, publish, command, chargerCall, reply, received].map((span) => span.status.code)).toEqual([0, 0, 0, 0, 0, 0, 0]);
  });

  it('a parked call (deliverWithinMs) keeps its trace: the owner it is delivered on continues it', async () => {
    const root = new BasicTracerProvider().getTracer('operator').startSpan('operator request');
    const { traceId, spanId } = root.spanContext();
    const pending = a.http('POST', '/chargers/TRACED-2/calls/DataTransfer?deliverWithinMs=30000', { vendorId: 'trace', data: 'later' }, { traceparent: `00-${traceId}-${spanId}-01` });
    await waitFor('the call to be parked', async () => (await admin.llen(new RedisKeys().parked('TRACED-2'))) === 1);
    // The handler is in place before the socket opens: the parked call is sent right after the 101.
    const client = chargePoint(b.wsUrl, 'TRACED-2');
    later.push(client);
    client.handle('DataTransfer', ({ params }) => ({ status: 'Accepted', data: params.data }));
    await withTimeout(client.connect(), 10_000, 'TRACED-2 to connect');
    expect(await pending).toEqual({ status: 200, body: { result: { status: 'Accepted', data: 'later' } } });
    root.end();

    const park = await waitFor('A to write the park span', () => spansOf(files.a).find((span) => span.traceId === traceId && span.name === 'ocpp.cluster.park'));
    // The send span ends once the HTTP answer is out, so it may reach the file after the park span.
    const send = await waitFor('A to write the send span', () => spansOf(files.a).find((span) => span.spanId === park.parentSpanId));
    expect(send).toMatchObject({ name: 'ocpp.send DataTransfer', kind: CLIENT, attributes: { 'ocpp.parked': true } });
    const command = await waitFor('B to write the command span', () =>
      spansOf(files.b).find((span) => span.traceId === traceId && span.name === 'ocpp.cluster.command DataTransfer'),
    );
    expect(command).toMatchObject({ parentSpanId: park.spanId, kind: CONSUMER, attributes: { 'ocpp.outcome': 'result' } });
  });

  it("a charger's own CALL gets a SERVER span on the node that holds it, with its error status", async () => {
    await charger.call('Heartbeat', {});
    // The sample has no handler for it: answered with a CALLERROR, and the span says so.
    await expect(charger.call('DiagnosticsStatusNotification', { status: 'Idle' })).rejects.toBeDefined();
    const handled = await waitFor('B to write the Heartbeat span', () => spansOf(files.b).find((span) => span.name === 'ocpp.handle Heartbeat'));
    expect(handled).toMatchObject({ kind: SERVER, attributes: { 'ocpp.identity': 'TRACED-1', 'ocpp.action': 'Heartbeat', 'ocpp.node': 'trace-b' }, status: { code: 0 } });
    const refused = await waitFor('B to write the refused call span', () => spansOf(files.b).find((span) => span.name === 'ocpp.handle DiagnosticsStatusNotification'));
    expect(refused).toMatchObject({ kind: SERVER, status: { code: 2 }, attributes: { 'ocpp.error': 'OCPP_RPC_ERROR' } });
    expect(spansOf(files.a).some((span) => span.name.startsWith('ocpp.handle'))).toBe(false);
  });
});
