import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import { OcppHandler } from '../../lib/index.js';
import type { OcppContext, OcppProtocol, OcppRequest } from '../../lib/index.js';
import { RawChargePoint } from '../support/charge-point.js';
import { startModuleApp } from '../support/ocpp-test-app.js';
import type { TestApp } from '../support/ocpp-test-app.js';
import { sleep, waitFor } from '../support/wait.js';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';

const sends: Array<{ identity: string; action: string; payload: unknown }> = [];

@Injectable()
class RawHandlers {
  @OcppHandler('Heartbeat')
  heartbeat() {
    return { currentTime: new Date().toISOString() };
  }

  @OcppHandler('DataTransfer')
  async slowDataTransfer(payload: OcppRequest<OcppProtocol, 'DataTransfer'>) {
    await sleep(300);
    return { status: 'Accepted' as const, data: payload.data as string | undefined };
  }

  @OcppHandler('NotifyPeriodicEventStream', { protocols: ['ocpp2.1'] })
  periodic(payload: unknown, context: OcppContext) {
    sends.push({ identity: context.identity, action: context.action, payload });
  }
}

const HEARTBEAT = (id: string) => [2, id, 'Heartbeat', {}];

describe('raw frames (ws client)', () => {
  let app: TestApp;
  const url = (identity: string) => `${app.wsUrl}/${identity}`;

  beforeAll(async () => {
    app = await startModuleApp({ nodeId: 'raw-node', maxPayload: 4096, pingIntervalMs: 0 }, [RawHandlers]);
  });
  afterAll(async () => {
    await app?.close();
  });

  it.each([
    ['ocpp2.0.1', 'RpcFrameworkError'],
    ['ocpp2.1', 'RpcFrameworkError'],
  ])('answers garbage on %s with [4,"-1","%s"] and never echoes the input', async (protocol, code) => {
    const cp = await RawChargePoint.connect(url(`GARBAGE-${protocol}`), protocol);
    for (const garbage of ['not json {', '{"an":"object"}', '[2]', '["2","x"]', '[2, 42, "Heartbeat", {}]']) {
      cp.send(garbage);
      const reply = await cp.nextFrame((f) => Array.isArray(f) && f[0] === 4 && !cp.frames.slice(0, -1).includes(f));
      expect(reply.slice(0, 3)).toEqual([4, '-1', code]);
      expect(JSON.stringify(reply)).not.toContain('an":"object');
      cp.frames.length = 0;
    }
    cp.close();
  });

  it('answers garbage on 1.6 with a 1.6 error code and id "-1"', async () => {
    const cp = await RawChargePoint.connect(url('GARBAGE-16'), 'ocpp1.6');
    cp.send('not json {');
    const reply = await cp.nextFrame();
    expect(reply[0]).toBe(4);
    expect(reply[1]).toBe('-1');
    expect(['FormationViolation', 'GenericError', 'ProtocolError']).toContain(reply[2]);
    cp.close();
  });

  it('unknown message type: 2.0.1 answers MessageTypeNotSupported, 1.6 and 2.1 ignore it', async () => {
    const cp201 = await RawChargePoint.connect(url('TYPE-201'), 'ocpp2.0.1');
    cp201.send([7, 'u1', 'Heartbeat', {}]);
    expect((await cp201.nextFrame())[2]).toBe('MessageTypeNotSupported');
    cp201.close();
    for (const protocol of ['ocpp1.6', 'ocpp2.1']) {
      const cp = await RawChargePoint.connect(url(`TYPE-${protocol}`), protocol);
      cp.send([7, 'u1', 'Heartbeat', {}]);
      cp.send(HEARTBEAT('hb-after'));
      const first = await cp.nextFrame();
      expect(first.slice(0, 2)).toEqual([3, 'hb-after']);
      cp.close();
    }
  });

  it('never answers a CALLRESULT or CALLERROR, even a malformed or unknown one', async () => {
    const cp = await RawChargePoint.connect(url('NOANSWER'), 'ocpp2.0.1');
    cp.send([3, 'unknown-id', {}]);
    cp.send([4, 'unknown-id', 'GenericError', '', {}]);
    cp.send([3, 'x']);
    cp.send([4]);
    cp.send(HEARTBEAT('hb-1'));
    const first = await cp.nextFrame();
    expect(first.slice(0, 2)).toEqual([3, 'hb-1']);
    await sleep(100);
    expect(cp.frames).toHaveLength(1);
    cp.close();
  });

  it('rejects message ids over 36 characters', async () => {
    const cp = await RawChargePoint.connect(url('LONGID'), 'ocpp2.0.1');
    cp.send(HEARTBEAT('x'.repeat(37)));
    const reply = await cp.nextFrame();
    expect(reply[0]).toBe(4);
    expect(reply[2]).toBe('RpcFrameworkError');
    cp.send(HEARTBEAT('x'.repeat(36)));
    expect((await cp.nextFrame((f) => f[0] === 3))[1]).toBe('x'.repeat(36));
    cp.close();
  });

  it('rejects a repeated id while the first call with it is in flight, and still answers the first', async () => {
    const cp = await RawChargePoint.connect(url('REPEAT'), 'ocpp2.0.1');
    cp.send([2, 'same', 'DataTransfer', { vendorId: 'v', data: 'first' }]);
    cp.send([2, 'same', 'DataTransfer', { vendorId: 'v', data: 'second' }]);
    const error = await cp.nextFrame((f) => f[0] === 4);
    expect(error.slice(0, 3)).toEqual([4, 'same', 'RpcFrameworkError']);
    const result = await cp.nextFrame((f) => f[0] === 3);
    expect(result).toEqual([3, 'same', { status: 'Accepted', data: 'first' }]);
    cp.close();
  });

  it('2.1 SEND: inbound reaches the handler unanswered; outbound arrives as [6,...]', async () => {
    const cp = await RawChargePoint.connect(url('SEND-21'), 'ocpp2.1');
    cp.send([6, 's1', 'NotifyPeriodicEventStream', { id: 1, pending: 0, basetime: new Date().toISOString(), data: [{ t: 0, v: '1' }] }]);
    await waitFor('SEND to reach its handler', () => sends.some((s) => s.identity === 'SEND-21'));
    cp.send(HEARTBEAT('hb-send'));
    expect((await cp.nextFrame())[1]).toBe('hb-send'); // nothing was sent back for the SEND
    await app.service.sendMessage('SEND-21', 'ocpp2.1', 'NotifyPeriodicEventStream', { id: 2, pending: 0, basetime: new Date().toISOString(), data: [{ t: 0, v: '2' }] });
    const sent = await cp.nextFrame((f) => f[0] === 6);
    expect(sent[2]).toBe('NotifyPeriodicEventStream');
    cp.close();
  });

  it('2.1 SEND that breaks the NotifyPeriodicEventStream schema is dropped unanswered, the connection stays', async () => {
    const cp = await RawChargePoint.connect(url('SEND-21-BAD'), 'ocpp2.1');
    cp.send([6, 'bad-send', 'NotifyPeriodicEventStream', { id: 1, data: 'not an array' }]);
    cp.send(HEARTBEAT('hb-after-bad-send'));
    const reply = await cp.nextFrame();
    expect(reply.slice(0, 2)).toEqual([3, 'hb-after-bad-send']); // no CALLERROR for the SEND, and it came first
    cp.send([6, 'good-send', 'NotifyPeriodicEventStream', { id: 3, pending: 0, basetime: new Date().toISOString(), data: [{ t: 0, v: '3' }] }]);
    await waitFor('the valid SEND to reach its handler', () => sends.some((s) => s.identity === 'SEND-21-BAD'));
    expect(sends.filter((s) => s.identity === 'SEND-21-BAD').map((s) => (s.payload as { id: number }).id)).toEqual([3]);
    cp.close();
  });

  it('2.1 CALLRESULTERROR about our CALLRESULT is not answered and the connection stays', async () => {
    const cp = await RawChargePoint.connect(url('CRE-21'), 'ocpp2.1');
    cp.send(HEARTBEAT('hb-x'));
    await cp.nextFrame();
    cp.send([5, 'hb-x', 'FormatViolation', 'bad time', {}]);
    cp.send(HEARTBEAT('hb-y'));
    expect((await cp.nextFrame((f) => f[1] === 'hb-y'))[0]).toBe(3);
    expect(cp.frames).toHaveLength(2);
    cp.close();
  });

  it('closes with 1009 on an oversized frame and the node keeps serving others', async () => {
    const big = await RawChargePoint.connect(url('BIG'), 'ocpp1.6');
    const closed = big.closed();
    big.send([2, 'big', 'DataTransfer', { vendorId: 'v', data: 'x'.repeat(10_000) }]);
    expect((await closed).code).toBe(1009);
    const other = await RawChargePoint.connect(url('SMALL'), 'ocpp1.6');
    other.send(HEARTBEAT('ok'));
    expect((await other.nextFrame())[0]).toBe(3);
    other.close();
  });

  it('refuses a bad identity with HTTP 400 and a wrong path with 404, never hanging', async () => {
    await expect(RawChargePoint.connect(`${app.wsUrl}/bad%00id`, 'ocpp1.6')).rejects.toThrow(/HTTP 400/);
    await expect(RawChargePoint.connect(`${app.wsUrl}/${'x'.repeat(49)}`, 'ocpp1.6')).rejects.toThrow(/HTTP 400/);
    await expect(RawChargePoint.connect(`${app.httpUrl.replace('http', 'ws')}/elsewhere/CP1`, 'ocpp1.6')).rejects.toThrow(/HTTP 404/);
  });

  it('finishes the handshake without a subprotocol and closes with 1002 when none matches', async () => {
    // ws's own client aborts when it gets no subprotocol back, so speak the handshake by hand.
    const socket = connect(app.port, '127.0.0.1');
    const received: Buffer[] = [];
    socket.on('data', (chunk) => received.push(chunk));
    socket.write(
      [
        'GET /ocpp/NOPROTO HTTP/1.1',
        `Host: 127.0.0.1:${app.port}`,
        'Upgrade: websocket',
        'Connection: Upgrade',
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
        'Sec-WebSocket-Version: 13',
        'Sec-WebSocket-Protocol: ocpp9.9',
        '',
        '',
      ].join('\r\n'),
    );
    const closeFrameArrived = () => {
      const bytes = Buffer.concat(received);
      const end = bytes.indexOf('\r\n\r\n');
      return end >= 0 && bytes.length >= end + 4 + 4;
    };
    await waitFor('the server to send a close frame', closeFrameArrived);
    socket.destroy();
    const bytes = Buffer.concat(received);
    const headerEnd = bytes.indexOf('\r\n\r\n');
    const head = bytes.subarray(0, headerEnd).toString();
    expect(head).toMatch(/^HTTP\/1.1 101/);
    expect(head.toLowerCase()).not.toContain('sec-websocket-protocol');
    const frame = bytes.subarray(headerEnd + 4);
    expect(frame[0]).toBe(0x88); // FIN + close opcode
    expect(frame.readUInt16BE(2)).toBe(1002);
  });
});
