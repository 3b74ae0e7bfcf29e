import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer, type ClientOptions } from 'ws';
import {
  ConnectionClosedError,
  InvalidOptionsError,
  OcppCallError,
  OcppRpcError,
  OcppTimeoutError,
  OcppValidationError,
  PayloadTooLargeError,
  ProtocolMismatchError,
  QueueFullError,
} from '../../lib/protocol/errors.js';
import { AnsweredCalls } from '../../lib/protocol/answered-calls.js';
import type { OcppProtocol } from '../../lib/protocol/protocol.js';
import { RpcSession, type PayloadValidator, type RpcSessionOptions } from '../../lib/protocol/rpc-session.js';

type Frame = unknown[];

/** Resolves with `promise`, or fails after `ms` naming what it waited for. */
function within<T>(promise: Promise<T>, what: string, ms = 3000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Settles with the rejection reason (or fails if `promise` resolves). */
async function rejection(promise: Promise<unknown>, what: string): Promise<any> {
  return within(
    promise.then(
      (value) => {
        throw new Error(`expected ${what} to fail, it resolved with ${JSON.stringify(value)}`);
      },
      (err: unknown) => err,
    ),
    what,
  );
}

/** The charge point side: a plain ws client that records every frame it receives. */
class Charger {
  readonly frames: Frame[] = [];
  private read = 0;
  private wake: (() => void) | null = null;
  readonly closed: Promise<{ code: number; reason: string }>;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      this.frames.push(JSON.parse(data.toString()) as Frame);
      this.wake?.();
    });
    this.closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** The next frame not yet returned by next(). */
  async next(what = 'a frame'): Promise<Frame> {
    while (this.read >= this.frames.length) {
      await within(new Promise<void>((resolve) => (this.wake = resolve)), what);
    }
    return this.frames[this.read++];
  }

  /** Actions of every CALL received so far. */
  calls(): string[] {
    return this.frames.filter((f) => f[0] === 2).map((f) => f[2] as string);
  }

  /** Proves that nothing else was answered: a Heartbeat sent now must be the next frame back. */
  async probe(id = 'probe'): Promise<void> {
    this.send([2, id, 'Heartbeat', {}]);
    expect(await this.next(`answer to ${id}`)).toEqual([3, id, expect.any(Object)]);
  }
}

interface Connected {
  session: RpcSession;
  charger: Charger;
  server: WebSocket;
  problems: string[];
  warnings: string[];
  errors: string[];
  closes: Array<[number, string]>;
}

const heartbeat = () => ({ currentTime: new Date(0).toISOString() });

let wss: WebSocketServer;
let port: number;
const clients: WebSocket[] = [];

beforeEach(async () => {
  wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await within(new Promise((resolve) => wss.once('listening', resolve)), 'listening');
  port = (wss.address() as AddressInfo).port;
});

afterEach(async () => {
  const closing = clients.splice(0).map(
    (ws) =>
      new Promise<void>((resolve) => {
        if (ws.readyState === WebSocket.CLOSED) return resolve();
        ws.once('close', () => resolve());
        ws.terminate();
      }),
  );
  await within(Promise.all(closing), 'clients to close');
  await within(new Promise((resolve) => wss.close(resolve)), 'server to close');
});

async function connect(
  overrides: Partial<RpcSessionOptions> & { protocol?: OcppProtocol } = {},
  clientOptions: ClientOptions = {},
  beforeSession?: (server: WebSocket) => void,
): Promise<Connected> {
  const protocol = overrides.protocol ?? 'ocpp2.0.1';
  const problems: string[] = [];
  const warnings: string[] = [];
  const errors: string[] = [];
  const closes: Array<[number, string]> = [];
  const accepted = new Promise<{ session: RpcSession; server: WebSocket }>((resolve) => {
    wss.once('connection', (server) => {
      beforeSession?.(server);
      const session = new RpcSession({
        identity: 'CP1',
        protocol,
        socket: server,
        callTimeoutMs: 2000,
        maxQueueSize: 10,
        pingIntervalMs: 0,
        validator: null,
        rateLimit: null,
        onCall: heartbeat,
        onClose: (code, reason) => closes.push([code, reason]),
        onProtocolProblem: (reason) => problems.push(reason),
        logger: { warn: (m) => warnings.push(m), error: (m) => errors.push(m) },
        ...overrides,
      });
      resolve({ session, server });
    });
  });
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ocpp/CP1`, [protocol], clientOptions);
  clients.push(ws);
  const charger = new Charger(ws);
  await within(new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject)), 'client open');
  const { session, server } = await within(accepted, 'server connection');
  return { session, charger, server, problems, warnings, errors, closes };
}

describe('RpcSession: calls and answers', () => {
  it('sends our CALL and resolves with the CALLRESULT payload', async () => {
    const { session, charger } = await connect();
    const result = session.call('Reset', { type: 'Immediate' });
    const frame = await charger.next();
    expect(frame).toEqual([2, expect.any(String), 'Reset', { type: 'Immediate' }]);
    expect((frame[1] as string).length).toBeLessThanOrEqual(36);
    charger.send([3, frame[1], { status: 'Accepted' }]);
    expect(await within(result, 'Reset result')).toEqual({ status: 'Accepted' });
  });

  it('uses a fresh id for every call', async () => {
    const { session, charger } = await connect();
    const ids = new Set<string>();
    for (let i = 0; i < 5; i++) {
      const result = session.call('DataTransfer', { vendorId: 'v' });
      const frame = await charger.next();
      ids.add(frame[1] as string);
      charger.send([3, frame[1], { status: 'Accepted' }]);
      await within(result, 'DataTransfer result');
    }
    expect(ids.size).toBe(5);
  });

  it('answers an inbound CALL with onCall’s result', async () => {
    const { charger } = await connect();
    charger.send([2, 'c1', 'Heartbeat', {}]);
    expect(await charger.next()).toEqual([3, 'c1', heartbeat()]);
  });

  it('answers {} when the handler returns nothing', async () => {
    const { charger } = await connect({ onCall: () => undefined as unknown as Record<string, unknown> });
    charger.send([2, 'c1', 'StatusNotification', {}]);
    expect(await charger.next()).toEqual([3, 'c1', {}]);
  });

  it('rejects with OcppCallError carrying the code in the negotiated spelling', async () => {
    const { session, charger } = await connect({ protocol: 'ocpp2.0.1' });
    const result = session.call('SetVariables', { setVariableData: [] });
    const frame = await charger.next();
    charger.send([4, frame[1], 'FormationViolation', 'bad payload', { field: 'x' }]);
    const err = await rejection(result, 'SetVariables');
    expect(err).toBeInstanceOf(OcppCallError);
    expect(err).toMatchObject({
      identity: 'CP1',
      action: 'SetVariables',
      errorCode: 'FormatViolation',
      errorDescription: 'bad payload',
      errorDetails: { field: 'x' },
    });
  });
});

describe('RpcSession: outbound FIFO', () => {
  it('keeps one CALL in flight and sends in order', async () => {
    const { session, charger } = await connect();
    let outstanding = 0;
    let maxOutstanding = 0;
    charger.ws.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as Frame;
      if (frame[0] !== 2) return;
      outstanding++;
      maxOutstanding = Math.max(maxOutstanding, outstanding);
      // Answer a little later, leaving room for a second CALL to (wrongly) arrive.
      setTimeout(() => {
        outstanding--;
        charger.send([3, frame[1], { n: (frame[3] as { n: number }).n }]);
      }, 20);
    });
    const results = [1, 2, 3, 4, 5].map((n) => session.call(`Action${n}`, { n }));
    expect(session.inFlightCall).toBe('Action1');
    expect(session.queuedCalls).toBe(4);
    expect(await within(Promise.all(results), 'all results')).toEqual([1, 2, 3, 4, 5].map((n) => ({ n })));
    expect(charger.calls()).toEqual(['Action1', 'Action2', 'Action3', 'Action4', 'Action5']);
    expect(maxOutstanding).toBe(1);
    expect(session.inFlightCall).toBeNull();
  });

  it('rejects with QueueFullError past maxQueueSize (queued plus in flight)', async () => {
    const { session } = await connect({ maxQueueSize: 2 });
    const a = session.call('A', {});
    const b = session.call('B', {});
    const err = await rejection(session.call('C', {}), 'C');
    expect(err).toBeInstanceOf(QueueFullError);
    expect(err).toMatchObject({ identity: 'CP1', limit: 2 });
    await within(session.close(), 'close');
    await rejection(a, 'A');
    await rejection(b, 'B');
  });
});

describe('RpcSession: timeouts and deadlines', () => {
  it('rejects an in-flight call with OcppTimeoutError(sent=true), sends the next, ignores the late answer', async () => {
    const { session, charger, problems } = await connect();
    const first = session.call('First', {}, { timeoutMs: 100 });
    const second = session.call('Second', {});
    let secondSettled = false;
    void second.then(
      () => (secondSettled = true),
      () => (secondSettled = true),
    );
    const f1 = await charger.next();
    expect(f1[2]).toBe('First');
    const err = await rejection(first, 'First');
    expect(err).toBeInstanceOf(OcppTimeoutError);
    expect(err).toMatchObject({ action: 'First', sent: true });

    const f2 = await charger.next();
    expect(f2[2]).toBe('Second');
    charger.send([3, f1[1], { late: true }]);
    charger.send([4, f1[1], 'GenericError', 'late too', {}]);
    await charger.probe();
    expect(secondSettled).toBe(false);
    expect(problems).toEqual([]);

    charger.send([3, f2[1], { ok: 2 }]);
    expect(await within(second, 'Second')).toEqual({ ok: 2 });
  });

  it('counts an answer to an id it never sent as a protocol problem, without answering it', async () => {
    const { charger, problems } = await connect();
    charger.send([3, 'never-sent', {}]);
    charger.send([4, 'never-sent-2', 'GenericError', '', {}]);
    await charger.probe();
    expect(problems).toEqual(['CALLRESULT for unknown message id', 'CALLERROR for unknown message id']);
  });

  it.each(['deadline', 'timeoutMs'])('never sends a queued call whose %s passes while it waits, and tells the caller at once', async (kind) => {
    const { session, charger } = await connect();
    const slow = session.call('Slow', {});
    const slowFrame = await charger.next();
    const expired = session.call('Expired', {}, kind === 'deadline' ? { deadline: Date.now() + 100 } : { timeoutMs: 100 });
    // Rejected while Slow is still in flight, i.e. before its turn came.
    const err = await rejection(expired, 'Expired');
    expect(err).toBeInstanceOf(OcppTimeoutError);
    expect(err).toMatchObject({ action: 'Expired', sent: false });
    expect(session.inFlightCall).toBe('Slow');
    expect(session.queuedCalls).toBe(0);

    charger.send([3, slowFrame[1], {}]);
    await within(slow, 'Slow');
    const after = session.call('After', {});
    const afterFrame = await charger.next();
    charger.send([3, afterFrame[1], {}]);
    await within(after, 'After');
    expect(charger.calls()).toEqual(['Slow', 'After']);
  });

  it('takes the earlier of timeoutMs and deadline', async () => {
    const { session, charger } = await connect();
    const result = session.call('Slow', {}, { timeoutMs: 60_000, deadline: Date.now() + 100 });
    await charger.next();
    const err = await rejection(result, 'Slow');
    expect(err).toBeInstanceOf(OcppTimeoutError);
    expect(err.sent).toBe(true);
  });

  it('bounds a call by its own deadline when the call answered before it had a later one', async () => {
    const { session, charger } = await connect();
    const long = session.call('Long', {}, { timeoutMs: 60_000 });
    const longFrame = await charger.next();
    charger.send([3, longFrame[1], {}]);
    await within(long, 'Long');
    const short = session.call('Short', {}, { timeoutMs: 100 });
    await charger.next();
    const err = await rejection(short, 'Short');
    expect(err).toBeInstanceOf(OcppTimeoutError);
    expect(err).toMatchObject({ action: 'Short', sent: true });
  });

  it('does not time a call out at the deadline of the call answered before it', async () => {
    const { session, charger } = await connect();
    const short = session.call('Short', {}, { deadline: Date.now() + 100 });
    const shortFrame = await charger.next();
    charger.send([3, shortFrame[1], {}]);
    await within(short, 'Short');
    const long = session.call('Long', {}, { timeoutMs: 60_000 });
    const longFrame = await charger.next();
    // Well past the first call's deadline: a timer armed for it has fired by now.
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(session.inFlightCall).toBe('Long');
    charger.send([3, longFrame[1], { ok: true }]);
    expect(await within(long, 'Long')).toEqual({ ok: true });
  });

  it('rejects a call whose deadline has already passed without sending it', async () => {
    const { session, charger } = await connect();
    const err = await rejection(session.call('Late', {}, { deadline: Date.now() - 1 }), 'Late');
    expect(err).toBeInstanceOf(OcppTimeoutError);
    expect(err.sent).toBe(false);
    await charger.probe();
    expect(charger.calls()).toEqual([]);
  });
});

describe('RpcSession: both directions at once', () => {
  it('handles inbound CALLs while our CALL waits, and our CALL while a handler works', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const { session, charger } = await connect({
      onCall: async (call) => {
        if (call.action === 'Authorize') await gate;
        return call.action === 'Authorize' ? { idTokenInfo: { status: 'Accepted' } } : heartbeat();
      },
    });
    const out = session.call('GetBaseReport', { requestId: 1, reportBase: 'FullInventory' });
    const outFrame = await charger.next();

    charger.send([2, 'in1', 'Heartbeat', {}]);
    expect(await charger.next()).toEqual([3, 'in1', heartbeat()]);
    expect(session.inFlightCall).toBe('GetBaseReport');

    charger.send([2, 'in2', 'Authorize', { idToken: { idToken: 'x', type: 'ISO14443' } }]);
    charger.send([3, outFrame[1], { status: 'Accepted' }]);
    expect(await within(out, 'GetBaseReport')).toEqual({ status: 'Accepted' });

    release();
    expect(await charger.next()).toEqual([3, 'in2', { idTokenInfo: { status: 'Accepted' } }]);
  });

  it.each([
    ['ocpp1.6', 'GenericError'],
    ['ocpp2.0.1', 'RpcFrameworkError'],
    ['ocpp2.1', 'RpcFrameworkError'],
  ] as Array<[OcppProtocol, string]>)('%s: a repeated in-flight id gets %s, the original still completes', async (protocol, code) => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const seen: string[] = [];
    const { charger, problems } = await connect({
      protocol,
      onCall: async (call) => {
        seen.push(call.id);
        await gate;
        return { status: 'Accepted' };
      },
    });
    charger.send([2, 'dup', 'Authorize', { idTag: 'A' }]);
    charger.send([2, 'dup', 'Authorize', { idTag: 'B' }]);
    expect(await charger.next()).toEqual([4, 'dup', code, expect.any(String), {}]);
    release();
    expect(await charger.next()).toEqual([3, 'dup', { status: 'Accepted' }]);
    expect(seen).toEqual(['dup']);
    expect(problems).toEqual(['repeated message id']);

    // Once answered, the id may be used again.
    charger.send([2, 'dup', 'Authorize', { idTag: 'C' }]);
    expect(await charger.next()).toEqual([3, 'dup', { status: 'Accepted' }]);
  });
});

describe('RpcSession: handler errors', () => {
  it('answers an OcppRpcError with its code in the negotiated spelling', async () => {
    const { charger } = await connect({
      protocol: 'ocpp1.6',
      onCall: () => {
        throw new OcppRpcError('OccurrenceConstraintViolation', 'connectorId missing', { field: 'connectorId' });
      },
    });
    charger.send([2, 'e1', 'StatusNotification', {}]);
    expect(await charger.next()).toEqual([4, 'e1', 'OccurenceConstraintViolation', 'connectorId missing', { field: 'connectorId' }]);
  });

  it('answers an async OcppRpcError too', async () => {
    const { charger } = await connect({
      protocol: 'ocpp2.0.1',
      onCall: async () => {
        throw new OcppRpcError('SecurityError', 'not booted');
      },
    });
    charger.send([2, 'e1', 'Authorize', {}]);
    expect(await charger.next()).toEqual([4, 'e1', 'SecurityError', 'not booted', {}]);
  });

  it.each([
    ['a thrown Error', () => {
      throw new Error('db password is hunter2');
    }],
    ['a rejected promise', async () => {
      throw new Error('db password is hunter2');
    }],
  ])('answers InternalError for %s, without leaking its message', async (_, onCall) => {
    const { charger, errors } = await connect({ onCall: onCall as RpcSessionOptions['onCall'] });
    charger.send([2, 'e1', 'Heartbeat', {}]);
    const frame = await charger.next();
    expect(frame).toEqual([4, 'e1', 'InternalError', expect.any(String), {}]);
    expect(JSON.stringify(frame)).not.toContain('hunter2');
    expect(errors.join('\n')).toContain('hunter2');
  });

  it('answers InternalError when the handler returns a non-object', async () => {
    const { charger, errors } = await connect({ onCall: () => ['not', 'an', 'object'] as unknown as Record<string, unknown> });
    charger.send([2, 'e1', 'Heartbeat', {}]);
    expect(await charger.next()).toEqual([4, 'e1', 'InternalError', expect.any(String), {}]);
    expect(errors).toHaveLength(1);
  });
});

describe('RpcSession: strict validation', () => {
  // 'Strict' requests need { ok: true }; its responses need a string status.
  const validator: PayloadValidator = {
    validate(_protocol, action, direction, payload) {
      if (action !== 'Strict') return null;
      const p = payload as Record<string, unknown>;
      const valid = direction === 'request' ? p.ok === true : typeof p.status === 'string';
      return valid ? null : { errorCode: 'OccurrenceConstraintViolation', description: `${direction} broken`, details: { direction } };
    },
  };

  it('rejects our invalid request before queueing, and never sends it', async () => {
    const { session, charger } = await connect({ validator });
    const err = await rejection(session.call('Strict', { ok: false }), 'Strict');
    expect(err).toBeInstanceOf(OcppValidationError);
    expect(err).toMatchObject({ action: 'Strict', direction: 'request', errorCode: 'OccurrenceConstraintViolation' });
    const next = session.call('Other', {});
    const frame = await charger.next();
    expect(frame[2]).toBe('Other');
    charger.send([3, frame[1], {}]);
    await within(next, 'Other');
    expect(charger.calls()).toEqual(['Other']);
  });

  it('tells a 2.1 charger with CALLRESULTERROR that its CALLRESULT broke the schema (2.0.1 has no such frame)', async () => {
    const { session, charger } = await connect({ protocol: 'ocpp2.1', validator });
    const bad = session.call('Strict', { ok: true });
    const badFrame = await charger.next();
    charger.send([3, badFrame[1], { status: 42 }]);
    expect(await rejection(bad, 'Strict')).toBeInstanceOf(OcppValidationError);
    expect(await charger.next('the CALLRESULTERROR')).toEqual([5, badFrame[1], 'OccurrenceConstraintViolation', 'response broken', { direction: 'response' }]);

    const older = await connect({ protocol: 'ocpp2.0.1', validator });
    const call = older.session.call('Strict', { ok: true });
    const frame = await older.charger.next();
    older.charger.send([3, frame[1], { status: 42 }]);
    await rejection(call, 'Strict');
    await older.charger.probe();
    expect(older.charger.frames).toHaveLength(2); // the CALL and the probe's answer: nothing about the bad result
  });

  it('rejects the charger’s invalid CALLRESULT and accepts a valid one', async () => {
    const { session, charger } = await connect({ validator });
    const bad = session.call('Strict', { ok: true });
    const badFrame = await charger.next();
    charger.send([3, badFrame[1], { status: 42 }]);
    const err = await rejection(bad, 'Strict');
    expect(err).toBeInstanceOf(OcppValidationError);
    expect(err).toMatchObject({ direction: 'response', description: 'response broken' });

    const good = session.call('Strict', { ok: true });
    const goodFrame = await charger.next();
    charger.send([3, goodFrame[1], { status: 'Accepted' }]);
    expect(await within(good, 'Strict')).toEqual({ status: 'Accepted' });
  });

  it('answers an invalid inbound CALL with the problem’s code, without calling onCall', async () => {
    const seen: string[] = [];
    const { charger, problems } = await connect({
      protocol: 'ocpp1.6',
      validator,
      onCall: (call) => {
        seen.push(call.id);
        return { status: 'ok' };
      },
    });
    charger.send([2, 'v1', 'Strict', { ok: 'nope' }]);
    expect(await charger.next()).toEqual([4, 'v1', 'OccurenceConstraintViolation', 'request broken', { direction: 'request' }]);
    expect(seen).toEqual([]);
    expect(problems).toEqual(['invalid CALL payload']);
  });

  it('does not send an invalid reply of ours: answers InternalError and logs', async () => {
    const { charger, errors } = await connect({ validator, onCall: () => ({ leaked: 'internal-state' }) });
    charger.send([2, 'v2', 'Strict', { ok: true }]);
    const frame = await charger.next();
    expect(frame).toEqual([4, 'v2', 'InternalError', expect.any(String), {}]);
    expect(JSON.stringify(frame)).not.toContain('internal-state');
    expect(errors.join('\n')).toContain('Strict');
  });
});

describe('RpcSession: bad input', () => {
  it('answers garbage per the version and counts it, leaving the in-flight call alone', async () => {
    const { session, charger, problems } = await connect({ protocol: 'ocpp2.0.1' });
    const out = session.call('Reset', { type: 'OnIdle' });
    const outFrame = await charger.next();
    charger.send('{not json');
    expect(await charger.next()).toEqual([4, '-1', 'RpcFrameworkError', expect.any(String), {}]);
    charger.send([9, 'x1']);
    expect(await charger.next()).toEqual([4, 'x1', 'MessageTypeNotSupported', expect.any(String), {}]);
    charger.send([3, outFrame[1], { status: 'Accepted' }]);
    expect(await within(out, 'Reset')).toEqual({ status: 'Accepted' });
    expect(problems).toEqual(['invalid JSON', 'unknown message type']);
  });

  it('1.6 ignores an unknown message type and answers garbage with FormationViolation', async () => {
    const { charger, problems } = await connect({ protocol: 'ocpp1.6' });
    charger.send([9, 'x1']);
    charger.send('[]');
    expect(await charger.next()).toEqual([4, '-1', 'FormationViolation', expect.any(String), {}]);
    expect(problems).toEqual(['unknown message type', 'invalid message type id']);
  });

  it('never answers a malformed CALLRESULT or CALLERROR', async () => {
    const { charger, problems } = await connect();
    charger.send([3, 'r1', 'not-an-object']);
    charger.send([4, 'r1', 17]);
    await charger.probe();
    expect(problems).toEqual(['malformed CALLRESULT', 'malformed CALLERROR']);
  });
});

describe('RpcSession: OCPP 2.1 SEND and CALLRESULTERROR', () => {
  it('delivers an inbound SEND to onSend and never answers it', async () => {
    const sends: unknown[] = [];
    const { charger } = await connect({ protocol: 'ocpp2.1', onSend: (m) => sends.push(m) });
    charger.send([6, 's1', 'NotifyPeriodicEventStream', { id: 1, pending: 0, basetime: 'x', data: [] }]);
    await charger.probe();
    expect(sends).toEqual([{ id: 's1', action: 'NotifyPeriodicEventStream', payload: { id: 1, pending: 0, basetime: 'x', data: [] } }]);
    expect(charger.frames).toHaveLength(1);
  });

  it('sends a SEND on 2.1 and refuses on other versions', async () => {
    const { session, charger } = await connect({ protocol: 'ocpp2.1' });
    session.sendMessage('NotifyPeriodicEventStream', { id: 2 });
    expect(await charger.next()).toEqual([6, expect.any(String), 'NotifyPeriodicEventStream', { id: 2 }]);

    for (const protocol of ['ocpp1.6', 'ocpp2.0.1'] as OcppProtocol[]) {
      const other = await connect({ protocol });
      expect(() => other.session.sendMessage('NotifyPeriodicEventStream', {})).toThrow(ProtocolMismatchError);
    }
  });

  it('answers a retried CALL (same id and action) with its first answer, without running the handler again', async () => {
    const runs: string[] = [];
    let booked = 0;
    const { charger } = await connect({
      protocol: 'ocpp2.1',
      onCall: (call) => {
        runs.push(`${call.id}:${call.action}`);
        return call.action === 'TransactionEvent' ? { totalCost: ++booked } : heartbeat();
      },
    });
    charger.send([2, 't1', 'TransactionEvent', { eventType: 'Ended' }]);
    expect(await charger.next('first answer')).toEqual([3, 't1', { totalCost: 1 }]);
    charger.send([2, 't1', 'TransactionEvent', { eventType: 'Ended' }]);
    expect(await charger.next('answer to the retry')).toEqual([3, 't1', { totalCost: 1 }]);
    // The same id and action with other content is a new call (a charger that rebooted reuses ids).
    charger.send([2, 't1', 'TransactionEvent', { eventType: 'Started' }]);
    expect(await charger.next('answer to the other content')).toEqual([3, 't1', { totalCost: 2 }]);
    // So is the same id with another action.
    charger.send([2, 't1', 'Heartbeat', {}]);
    expect(await charger.next('answer to the new call')).toEqual([3, 't1', heartbeat()]);
    expect(runs).toEqual(['t1:TransactionEvent', 't1:TransactionEvent', 't1:Heartbeat']);
  });

  it('runs a retry again when the first attempt failed', async () => {
    let attempts = 0;
    const { charger } = await connect({
      protocol: 'ocpp2.1',
      onCall: () => {
        if (++attempts === 1) throw new OcppRpcError('InternalError', 'database away');
        return { status: 'Accepted' };
      },
    });
    charger.send([2, 'r1', 'Authorize', {}]);
    expect(await charger.next()).toEqual([4, 'r1', 'InternalError', 'database away', {}]);
    charger.send([2, 'r1', 'Authorize', {}]);
    expect(await charger.next()).toEqual([3, 'r1', { status: 'Accepted' }]);
    expect(attempts).toBe(2);
  });

  it('recognises a retry on a new connection when the sessions share their answers', async () => {
    const answeredCalls = new AnsweredCalls();
    let runs = 0;
    const onCall = () => ({ run: ++runs });
    const first = await connect({ protocol: 'ocpp2.1', answeredCalls, onCall });
    first.charger.send([2, 'x1', 'MeterValues', {}]);
    expect(await first.charger.next()).toEqual([3, 'x1', { run: 1 }]);
    first.charger.ws.terminate();

    const second = await connect({ protocol: 'ocpp2.1', answeredCalls, onCall });
    second.charger.send([2, 'x1', 'MeterValues', {}]);
    expect(await second.charger.next()).toEqual([3, 'x1', { run: 1 }]);
    expect(runs).toBe(1);
  });

  it('runs a repeated id again on 1.6 and 2.0.1 (no retry semantics there)', async () => {
    for (const protocol of ['ocpp1.6', 'ocpp2.0.1'] as OcppProtocol[]) {
      let runs = 0;
      const { charger } = await connect({ protocol, onCall: () => ({ run: ++runs }) });
      charger.send([2, 'same', 'DataTransfer', {}]);
      expect(await charger.next()).toEqual([3, 'same', { run: 1 }]);
      charger.send([2, 'same', 'DataTransfer', {}]);
      expect(await charger.next()).toEqual([3, 'same', { run: 2 }]);
    }
  });

  it('logs and counts a CALLRESULTERROR without answering it', async () => {
    const { charger, problems, warnings } = await connect({ protocol: 'ocpp2.1' });
    charger.send([5, 'c9', 'FormatViolation', 'your result was wrong', {}]);
    await charger.probe();
    expect(problems).toEqual(['CALLRESULTERROR received']);
    expect(warnings.join('\n')).toContain('FormatViolation');
  });
});

describe('RpcSession: pings', () => {
  it('terminates a socket that does not answer pings and rejects its pending call', async () => {
    const { session, charger, closes } = await connect({ pingIntervalMs: 50 }, { autoPong: false });
    const pending = session.call('Reset', { type: 'Immediate' });
    await charger.next();
    const err = await rejection(pending, 'Reset');
    expect(err).toBeInstanceOf(ConnectionClosedError);
    await within(charger.closed, 'client close');
    expect(session.isOpen).toBe(false);
    expect(closes).toHaveLength(1);
  });

  it('keeps a charger that never answers pings but sends a frame every 1.25 intervals', async () => {
    const intervalMs = 300;
    const { session, charger } = await connect({ pingIntervalMs: intervalMs }, { autoPong: false });
    let sent = 0;
    const talking = setInterval(() => charger.send([2, `hb${++sent}`, 'Heartbeat', {}]), intervalMs * 1.25);
    try {
      let pings = 0;
      const tenPings = new Promise<'pings'>((resolve) =>
        charger.ws.on('ping', () => {
          if (++pings === 10) resolve('pings');
        }),
      );
      const outcome = await within(Promise.race([tenPings, charger.closed.then(() => 'closed' as const)]), 'ten pings', 20_000);
      expect(outcome).toBe('pings');
      expect(session.isOpen).toBe(true);
    } finally {
      clearInterval(talking);
    }
  });

  it('terminates a charger that talked, then went silent without answering pings', async () => {
    const { session, charger, warnings } = await connect({ pingIntervalMs: 100 }, { autoPong: false });
    charger.send([2, 'hb', 'Heartbeat', {}]);
    expect(await charger.next('the Heartbeat answer')).toEqual([3, 'hb', expect.any(Object)]);
    await within(charger.closed, 'the silent socket to be terminated', 10_000);
    expect(session.isOpen).toBe(false);
    expect(warnings.join('\n')).toContain('no frame and no pong for two ping intervals');
  });

  it('keeps a charger whose pong waited unread while this process stalled past two ping intervals', async () => {
    // A ping to the charger is out; another charger's frame stalls the process (a long synchronous
    // task, a GC pause) and the pong arrives meanwhile, waiting in the kernel. Timers run before
    // sockets are read, so the silence check must not judge before that pong is read.
    const intervalMs = 100;
    const subject: { charger?: Charger } = {};
    const stallOn = (direction: 'in' | 'out', text: string): void => {
      if (direction !== 'in' || !text.includes('"stall"')) return;
      subject.charger!.ws.pong();
      const until = performance.now() + 3 * intervalMs;
      while (performance.now() < until) {
        // stalled: nothing else runs in this process
      }
    };
    const connected = await connect({ pingIntervalMs: intervalMs }, { autoPong: false });
    const charger = (subject.charger = connected.charger);
    const other = await connect({ onFrame: stallOn });
    await charger.probe('before');
    let pings = 0;
    charger.ws.on('ping', () => {
      // The first ping stays unanswered until the process is stalled; the others are answered.
      if (pings++ > 0) return charger.ws.pong();
      other.charger.send([2, 'stall', 'Heartbeat', {}]);
    });
    expect(await other.charger.next('the answer to the frame that stalled')).toEqual([3, 'stall', expect.any(Object)]);
    await within(
      new Promise<void>((resolve, reject) => {
        charger.ws.on('ping', () => pings >= 3 && resolve());
        void charger.closed.then(() => reject(new Error('the socket was closed')));
      }),
      'two pings after the stall',
    );
    expect(connected.session.isOpen).toBe(true);
    expect(connected.warnings.join('\n')).not.toContain('no frame and no pong');
    await charger.probe('after');
  });

  it('keeps a charger that this process did not ping while it stalled past two ping intervals', async () => {
    // The charger answers every ping; the process stalls inside one frame's handling and sends
    // none meanwhile. Silence is judged against a ping left unanswered for an interval, not
    // against the stall.
    const intervalMs = 100;
    const stallOn = (direction: 'in' | 'out', text: string): void => {
      if (direction !== 'in' || !text.includes('"stall"')) return;
      const until = performance.now() + 3 * intervalMs;
      while (performance.now() < until) {
        // stalled: no timer runs, no ping is sent
      }
    };
    const { session, charger, warnings } = await connect({ pingIntervalMs: intervalMs, onFrame: stallOn });
    await charger.probe('before');
    let pongs = 0;
    charger.ws.on('ping', () => pongs++);
    charger.send([2, 'stall', 'Heartbeat', {}]);
    expect(await charger.next('the answer to the frame that stalled')).toEqual([3, 'stall', expect.any(Object)]);
    // Two more pings answered after the stall: the socket was not judged silent in between.
    await within(
      new Promise<void>((resolve, reject) => {
        charger.ws.on('ping', () => pongs >= 2 && resolve());
        void charger.closed.then(() => reject(new Error('the socket was closed')));
      }),
      'two pings after the stall',
    );
    expect(session.isOpen).toBe(true);
    expect(warnings.join('\n')).not.toContain('no frame and no pong');
    await charger.probe('after');
  });

  it('keeps a socket that answers pings', async () => {
    const { session, charger } = await connect({ pingIntervalMs: 30 });
    let pings = 0;
    await within(
      new Promise<void>((resolve) =>
        charger.ws.on('ping', () => {
          if (++pings === 4) resolve();
        }),
      ),
      'four pings',
    );
    expect(session.isOpen).toBe(true);
    await charger.probe();
  });
});

describe('RpcSession: what cannot be sent', () => {
  const deep = (levels: number): Record<string, unknown> => {
    const root: Record<string, unknown> = {};
    let node = root;
    for (let i = 0; i < levels; i++) node = (node.a = {}) as Record<string, unknown>;
    return root;
  };

  it('refuses a call whose frame exceeds maxPayload (counted in UTF-8 bytes) without writing it', async () => {
    const { session, charger } = await connect({ maxPayload: 1024 });
    // 400 characters but 1,200 bytes: the limit counts bytes.
    const err = await rejection(session.call('DataTransfer', { vendorId: 'x', data: '€'.repeat(400) }), 'an oversized call');
    expect(err).toBeInstanceOf(PayloadTooLargeError);
    expect(err).toMatchObject({ code: 'OCPP_PAYLOAD_TOO_LARGE', sent: false, limit: 1024, identity: 'CP1', action: 'DataTransfer' });
    expect(err.bytes).toBeGreaterThan(1200);
    const small = session.call('DataTransfer', { vendorId: 'x', data: '€'.repeat(100) });
    const frame = await charger.next();
    expect(frame[2]).toBe('DataTransfer');
    charger.send([3, frame[1], { status: 'Accepted' }]);
    await within(small, 'the small call');
    expect(charger.calls()).toEqual(['DataTransfer']);
  });

  it('refuses an oversized SEND, and answers an oversized reply with InternalError', async () => {
    const { session, charger, errors } = await connect({
      protocol: 'ocpp2.1',
      maxPayload: 512,
      onCall: (call) => (call.action === 'Big' ? { blob: 'x'.repeat(600) } : {}),
    });
    expect(() => session.sendMessage('NotifyPeriodicEventStream', { data: 'x'.repeat(600) })).toThrow(PayloadTooLargeError);
    charger.send([2, 'big-1', 'Big', {}]);
    expect(await charger.next('the answer to Big')).toEqual([4, 'big-1', 'InternalError', expect.any(String), {}]);
    expect(errors.join('\n')).toContain('over maxPayload');
    await charger.probe();
    expect(charger.frames.filter((frame) => frame[0] === 6)).toEqual([]);
  });

  it('answers a payload too deep for JSON with OcppValidationError, not a RangeError', async () => {
    const { session, charger } = await connect();
    const err = await rejection(session.call('DataTransfer', { vendorId: 'x', data: deep(5_000) }), 'a deep call');
    expect(err).toBeInstanceOf(OcppValidationError);
    expect(err).toMatchObject({ direction: 'request', errorCode: 'FormatViolation' });
    await charger.probe();
    expect(charger.calls()).toEqual([]);
  });

  it('refuses a timeout beyond the 24 h maximum (timers cannot wait longer than 2^31-1 ms)', async () => {
    const { session, charger } = await connect();
    for (const timeoutMs of [2 ** 31, 24 * 60 * 60 * 1000 + 1, 1.5]) {
      const err = await rejection(session.call('Reset', { type: 'Immediate' }, { timeoutMs }), `timeoutMs ${timeoutMs}`);
      expect(err).toBeInstanceOf(InvalidOptionsError);
      expect(err.option).toBe('timeoutMs');
    }
    const longest = session.call('Reset', { type: 'Immediate' }, { timeoutMs: 24 * 60 * 60 * 1000 });
    const frame = await charger.next();
    charger.send([3, frame[1], { status: 'Accepted' }]);
    expect(await within(longest, 'a call with the longest timeout')).toEqual({ status: 'Accepted' });
  });
});

describe('RpcSession: closing', () => {
  it('close() rejects queued and in-flight calls with ConnectionClosedError and closes the socket', async () => {
    const { session, charger, closes } = await connect();
    const inFlight = session.call('A', {});
    const queued = session.call('B', {});
    await charger.next();
    await within(session.close(1001, 'going away'), 'close');
    const inFlightError = await rejection(inFlight, 'A');
    const queuedError = await rejection(queued, 'B');
    expect(inFlightError).toBeInstanceOf(ConnectionClosedError);
    expect(queuedError).toBeInstanceOf(ConnectionClosedError);
    // The written one may have been acted on; the queued one never left.
    expect((inFlightError as ConnectionClosedError).sent).toBe(true);
    expect((queuedError as ConnectionClosedError).sent).toBe(false);
    expect(await within(charger.closed, 'client close')).toEqual({ code: 1001, reason: 'going away' });
    expect(session.isOpen).toBe(false);
    expect(closes).toEqual([[1001, 'going away']]);
    expect(charger.calls()).toEqual(['A']);

    expect(await rejection(session.call('C', {}), 'C')).toBeInstanceOf(ConnectionClosedError);
    await within(session.close(), 'second close');
  });

  it('rejects pending calls when the charger closes the socket', async () => {
    const { session, charger, closes } = await connect();
    const inFlight = session.call('A', {});
    const queued = session.call('B', {});
    await charger.next();
    charger.ws.close(4000, 'bye');
    const err = await rejection(inFlight, 'A');
    expect(err).toBeInstanceOf(ConnectionClosedError);
    expect(err.closeCode).toBe(4000);
    expect(await rejection(queued, 'B')).toBeInstanceOf(ConnectionClosedError);
    expect(closes).toEqual([[4000, 'bye']]);
  });

  it('terminates the socket when the closing handshake does not complete', async () => {
    const { session, charger } = await connect({ closeTimeoutMs: 100 });
    charger.ws.pause(); // the charger stops reading, so it never answers our close frame
    await within(session.close(), 'close');
    expect(session.isOpen).toBe(false);
  });
});

describe('RpcSession: inbound rate limit', () => {
  it('pauses a flooding socket, then handles every message in order; other chargers are unaffected', async () => {
    let pauses = 0;
    const handled: string[] = [];
    const flooder = await connect(
      {
        rateLimit: { capacity: 2, refillPerSecond: 20 },
        onCall: (call) => {
          handled.push(call.id);
          return heartbeat();
        },
      },
      {},
      (server) => {
        const pause = server.pause.bind(server);
        server.pause = () => {
          pauses++;
          pause();
        };
      },
    );
    const other = await connect({ rateLimit: { capacity: 2, refillPerSecond: 20 } });

    const ids = Array.from({ length: 20 }, (_, i) => `f${i}`);
    for (const id of ids) flooder.charger.send([2, id, 'Heartbeat', {}]);
    await within(flooder.charger.next(), 'first answer');

    other.charger.send([2, 'o1', 'Heartbeat', {}]);
    expect(await other.charger.next()).toEqual([3, 'o1', heartbeat()]);
    expect(flooder.charger.frames.length).toBeLessThan(ids.length);

    const answers: Frame[] = [flooder.charger.frames[0]];
    for (let i = 1; i < ids.length; i++) answers.push(await flooder.charger.next(`answer ${i}`));
    expect(answers.map((f) => f[1])).toEqual(ids);
    expect(answers.every((f) => f[0] === 3)).toBe(true);
    expect(handled).toEqual(ids);
    expect(pauses).toBeGreaterThan(0);
    expect(flooder.problems).toEqual([]);
  });

  it('reads again while closing, so a throttled socket still closes cleanly', async () => {
    const { session, charger } = await connect({ rateLimit: { capacity: 1, refillPerSecond: 0.2 }, closeTimeoutMs: 10_000 });
    for (let i = 0; i < 5; i++) charger.send([2, `f${i}`, 'Heartbeat', {}]);
    await charger.next('first answer');
    // Without resuming, the charger's close reply would sit unread until closeTimeoutMs.
    await within(session.close(), 'close');
    expect(await within(charger.closed, 'client close')).toEqual({ code: 1000, reason: '' });
  });
});

describe('RpcSession: options', () => {
  it('rejects bad options, naming the option', async () => {
    const { server } = await connect();
    const base: RpcSessionOptions = {
      identity: 'CP2',
      protocol: 'ocpp1.6',
      socket: server,
      callTimeoutMs: 1000,
      maxQueueSize: 1,
      pingIntervalMs: 0,
      validator: null,
      rateLimit: null,
      onCall: heartbeat,
    };
    const cases: Array<[string, Partial<RpcSessionOptions>]> = [
      ['identity', { identity: '' }],
      ['protocol', { protocol: 'ocpp1.5' as OcppProtocol }],
      ['callTimeoutMs', { callTimeoutMs: 0 }],
      ['callTimeoutMs', { callTimeoutMs: 2 ** 31 }],
      ['maxPayload', { maxPayload: 0 }],
      ['maxQueueSize', { maxQueueSize: 0 }],
      ['pingIntervalMs', { pingIntervalMs: -1 }],
      ['rateLimit.capacity', { rateLimit: { capacity: 0, refillPerSecond: 1 } }],
      ['rateLimit.refillPerSecond', { rateLimit: { capacity: 1, refillPerSecond: 0 } }],
      ['closeTimeoutMs', { closeTimeoutMs: -5 }],
    ];
    for (const [option, patch] of cases) {
      let thrown: unknown;
      try {
        new RpcSession({ ...base, ...patch });
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(InvalidOptionsError);
      expect((thrown as InvalidOptionsError).option).toBe(option);
    }
  });
});
