import {
  encodeCall,
  encodeCallError,
  encodeCallResult,
  encodeCallResultError,
  encodeSend,
  MAX_MESSAGE_ID_LENGTH,
  parseFrame,
  type ParseOutcome,
} from '../../lib/protocol/codec.js';
import { MessageType } from '../../lib/protocol/message-type.js';
import type { OcppProtocol } from '../../lib/protocol/protocol.js';

const ALL: OcppProtocol[] = ['ocpp1.6', 'ocpp2.0.1', 'ocpp2.1'];

function reply(outcome: ParseOutcome): unknown[] | null {
  if (outcome.ok) throw new Error('expected a problem, got a frame');
  return outcome.reply === null ? null : (JSON.parse(outcome.reply) as unknown[]);
}

describe('parseFrame: valid frames', () => {
  it.each(ALL)('parses CALL on %s', (p) => {
    expect(parseFrame('[2,"a1","Heartbeat",{}]', p)).toEqual({
      ok: true,
      frame: { type: MessageType.CALL, id: 'a1', action: 'Heartbeat', payload: {} },
    });
  });

  it.each(ALL)('parses CALLRESULT on %s', (p) => {
    expect(parseFrame('[3,"a1",{"currentTime":"x"}]', p)).toEqual({
      ok: true,
      frame: { type: MessageType.CALLRESULT, id: 'a1', payload: { currentTime: 'x' } },
    });
  });

  it.each(ALL)('parses CALLERROR on %s', (p) => {
    expect(parseFrame('[4,"a1","NotImplemented","nope",{"k":1}]', p)).toEqual({
      ok: true,
      frame: {
        type: MessageType.CALLERROR,
        id: 'a1',
        errorCode: 'NotImplemented',
        errorDescription: 'nope',
        errorDetails: { k: 1 },
      },
    });
  });

  it('accepts a CALLERROR without details or description, and null details', () => {
    for (const raw of ['[4,"a1","GenericError"]', '[4,"a1","GenericError",""]', '[4,"a1","GenericError","",null]']) {
      const out = parseFrame(raw, 'ocpp1.6');
      expect(out).toEqual({
        ok: true,
        frame: { type: MessageType.CALLERROR, id: 'a1', errorCode: 'GenericError', errorDescription: '', errorDetails: {} },
      });
    }
  });

  it('parses CALLRESULTERROR on 2.1', () => {
    expect(parseFrame('[5,"a1","FormatViolation","bad",{}]', 'ocpp2.1')).toEqual({
      ok: true,
      frame: {
        type: MessageType.CALLRESULTERROR,
        id: 'a1',
        errorCode: 'FormatViolation',
        errorDescription: 'bad',
        errorDetails: {},
      },
    });
  });

  it('parses SEND on 2.1', () => {
    expect(parseFrame('[6,"s1","NotifyPeriodicEventStream",{"id":1}]', 'ocpp2.1')).toEqual({
      ok: true,
      frame: { type: MessageType.SEND, id: 's1', action: 'NotifyPeriodicEventStream', payload: { id: 1 } },
    });
  });

  it('accepts an id of exactly 36 characters', () => {
    const id = 'x'.repeat(MAX_MESSAGE_ID_LENGTH);
    expect(MAX_MESSAGE_ID_LENGTH).toBe(36);
    expect(parseFrame(`[2,"${id}","Heartbeat",{}]`, 'ocpp2.0.1').ok).toBe(true);
  });
});

describe('parseFrame: frames whose type cannot be told', () => {
  const SECRET = 'zz-secret-zz';
  const garbage: Array<[string, string]> = [
    ['invalid JSON', `[2,"${SECRET}",`],
    ['invalid JSON', `${SECRET}`],
    ['not an array', `{"${SECRET}":1}`],
    ['not an array', `"${SECRET}"`],
    ['not an array', '42'],
    ['not an array', 'null'],
    ['invalid message type id', `["2","${SECRET}","Heartbeat",{}]`],
    ['invalid message type id', `[null,"${SECRET}"]`],
    ['invalid message type id', `[2.5,"${SECRET}","Heartbeat",{}]`],
    ['invalid message type id', '[]'],
  ];

  it.each(garbage)('2.0.1 and 2.1 answer RpcFrameworkError with id -1 (%s: %s)', (reason, raw) => {
    for (const p of ['ocpp2.0.1', 'ocpp2.1'] as OcppProtocol[]) {
      const out = parseFrame(raw, p);
      expect(out).toMatchObject({ ok: false, reason });
      const frame = reply(out);
      expect(frame).toEqual([4, '-1', 'RpcFrameworkError', expect.any(String), {}]);
      expect(JSON.stringify(frame)).not.toContain(SECRET);
    }
  });

  it.each(garbage)('1.6 answers FormationViolation with id -1 (%s: %s)', (reason, raw) => {
    const out = parseFrame(raw, 'ocpp1.6');
    expect(out).toMatchObject({ ok: false, reason });
    const frame = reply(out);
    expect(frame).toEqual([4, '-1', 'FormationViolation', expect.any(String), {}]);
    expect(JSON.stringify(frame)).not.toContain(SECRET);
  });
});

describe('parseFrame: CALL problems', () => {
  it.each([
    ['ocpp1.6', 'FormationViolation'],
    ['ocpp2.0.1', 'RpcFrameworkError'],
    ['ocpp2.1', 'RpcFrameworkError'],
  ] as Array<[OcppProtocol, string]>)('%s: an unreadable id answers %s with id -1', (p, code) => {
    for (const raw of ['[2,17,"Heartbeat",{}]', '[2,null,"Heartbeat",{}]', '[2]', '[2,{"a":1},"Heartbeat",{}]']) {
      expect(reply(parseFrame(raw, p))).toEqual([4, '-1', code, expect.any(String), {}]);
    }
  });

  it.each([
    ['ocpp1.6', 'FormationViolation'],
    ['ocpp2.0.1', 'RpcFrameworkError'],
    ['ocpp2.1', 'RpcFrameworkError'],
  ] as Array<[OcppProtocol, string]>)('%s: an id over 36 characters answers %s with that id', (p, code) => {
    const id = 'y'.repeat(MAX_MESSAGE_ID_LENGTH + 1);
    const out = parseFrame(`[2,"${id}","Heartbeat",{}]`, p);
    expect(out).toMatchObject({ ok: false, reason: 'message id too long' });
    expect(reply(out)).toEqual([4, id, code, expect.any(String), {}]);
  });

  it.each([
    ['ocpp1.6', 'FormationViolation'],
    ['ocpp2.0.1', 'RpcFrameworkError'],
    ['ocpp2.1', 'RpcFrameworkError'],
  ] as Array<[OcppProtocol, string]>)('%s: wrong arity or a bad action answers %s with the id', (p, code) => {
    for (const raw of [
      '[2,"c1","Heartbeat"]',
      '[2,"c1","Heartbeat",{},1]',
      '[2,"c1",5,{}]',
      '[2,"c1","",{}]',
    ]) {
      expect(reply(parseFrame(raw, p))).toEqual([4, 'c1', code, expect.any(String), {}]);
    }
  });

  it.each([
    ['ocpp1.6', 'FormationViolation'],
    ['ocpp2.0.1', 'FormatViolation'],
    ['ocpp2.1', 'FormatViolation'],
  ] as Array<[OcppProtocol, string]>)('%s: a payload that is not an object answers %s', (p, code) => {
    for (const payload of ['[]', 'null', '"x"', '3', 'true']) {
      const out = parseFrame(`[2,"c1","Heartbeat",${payload}]`, p);
      expect(out).toMatchObject({ ok: false, reason: 'CALL payload not an object' });
      expect(reply(out)).toEqual([4, 'c1', code, expect.any(String), {}]);
    }
  });
});

describe('parseFrame: unknown message types', () => {
  it('1.6 ignores them', () => {
    for (const raw of ['[7,"m1",{}]', '[5,"m1","GenericError","",{}]', '[6,"m1","X",{}]', '[0]']) {
      expect(parseFrame(raw, 'ocpp1.6')).toEqual({ ok: false, reason: 'unknown message type', reply: null });
    }
  });

  it('2.1 ignores them', () => {
    for (const raw of ['[7,"m1",{}]', '[1,"m1"]', '[-3]']) {
      expect(parseFrame(raw, 'ocpp2.1')).toEqual({ ok: false, reason: 'unknown message type', reply: null });
    }
  });

  it('2.0.1 answers MessageTypeNotSupported, with the id when readable', () => {
    expect(reply(parseFrame('[7,"m1",{}]', 'ocpp2.0.1'))).toEqual([4, 'm1', 'MessageTypeNotSupported', expect.any(String), {}]);
    expect(reply(parseFrame('[7,99,{}]', 'ocpp2.0.1'))).toEqual([4, '-1', 'MessageTypeNotSupported', expect.any(String), {}]);
    expect(reply(parseFrame('[7]', 'ocpp2.0.1'))).toEqual([4, '-1', 'MessageTypeNotSupported', expect.any(String), {}]);
  });

  it('2.0.1 treats CALLRESULTERROR and SEND as unknown types', () => {
    expect(reply(parseFrame('[5,"m1","GenericError","",{}]', 'ocpp2.0.1'))).toEqual([
      4,
      'm1',
      'MessageTypeNotSupported',
      expect.any(String),
      {},
    ]);
    expect(reply(parseFrame('[6,"m2","X",{}]', 'ocpp2.0.1'))).toEqual([4, 'm2', 'MessageTypeNotSupported', expect.any(String), {}]);
  });
});

describe('parseFrame: malformed answers are never answered', () => {
  it.each(ALL)('malformed CALLRESULT on %s', (p) => {
    for (const raw of ['[3,"r1"]', '[3,"r1",[]]', '[3,"r1",null]', '[3,5,{}]', '[3,"r1",{},{}]', `[3,"${'r'.repeat(37)}",{}]`]) {
      expect(parseFrame(raw, p)).toEqual({ ok: false, reason: 'malformed CALLRESULT', reply: null });
    }
  });

  it.each(ALL)('malformed CALLERROR on %s', (p) => {
    for (const raw of ['[4,"e1"]', '[4,"e1",7,"",{}]', '[4,null,"GenericError","",{}]', '[4,"e1","GenericError",3,{}]', '[4,"e1","GenericError","",[]]', '[4,"e1","GenericError","",{},1]']) {
      expect(parseFrame(raw, p)).toEqual({ ok: false, reason: 'malformed CALLERROR', reply: null });
    }
  });

  it('malformed CALLRESULTERROR on 2.1', () => {
    for (const raw of ['[5,"e1"]', '[5,1,"GenericError","",{}]', '[5,"e1","GenericError","","x"]']) {
      expect(parseFrame(raw, 'ocpp2.1')).toEqual({ ok: false, reason: 'malformed CALLRESULTERROR', reply: null });
    }
  });

  it('malformed SEND on 2.1', () => {
    for (const raw of ['[6,"s1","X"]', '[6,"s1","X",[]]', '[6,"s1",1,{}]', '[6,1,"X",{}]', '[6,"s1","",{}]']) {
      expect(parseFrame(raw, 'ocpp2.1')).toEqual({ ok: false, reason: 'malformed SEND', reply: null });
    }
  });
});

describe('encoders', () => {
  it('encode the five frames', () => {
    expect(JSON.parse(encodeCall('i1', 'Reset', { type: 'Hard' }))).toEqual([2, 'i1', 'Reset', { type: 'Hard' }]);
    expect(JSON.parse(encodeCallResult('i1', {}))).toEqual([3, 'i1', {}]);
    expect(JSON.parse(encodeCallError('ocpp2.0.1', 'i1', 'NotSupported', 'no', { a: 1 }))).toEqual([
      4,
      'i1',
      'NotSupported',
      'no',
      { a: 1 },
    ]);
    expect(JSON.parse(encodeCallResultError('i1', 'FormatViolation', 'bad', {}))).toEqual([5, 'i1', 'FormatViolation', 'bad', {}]);
    expect(JSON.parse(encodeSend('i1', 'NotifyPeriodicEventStream', { id: 1 }))).toEqual([
      6,
      'i1',
      'NotifyPeriodicEventStream',
      { id: 1 },
    ]);
  });

  it('round-trip through parseFrame', () => {
    const call = parseFrame(encodeCall('i1', 'Reset', { type: 'Hard' }), 'ocpp1.6');
    expect(call).toEqual({ ok: true, frame: { type: MessageType.CALL, id: 'i1', action: 'Reset', payload: { type: 'Hard' } } });
    const send = parseFrame(encodeSend('i2', 'X', {}), 'ocpp2.1');
    expect(send).toEqual({ ok: true, frame: { type: MessageType.SEND, id: 'i2', action: 'X', payload: {} } });
  });

  it('encodeCallError uses the negotiated spelling', () => {
    expect(JSON.parse(encodeCallError('ocpp1.6', 'i', 'OccurrenceConstraintViolation', ''))[2]).toBe('OccurenceConstraintViolation');
    expect(JSON.parse(encodeCallError('ocpp1.6', 'i', 'FormatViolation', ''))[2]).toBe('FormationViolation');
    expect(JSON.parse(encodeCallError('ocpp1.6', 'i', 'RpcFrameworkError', ''))[2]).toBe('GenericError');
    expect(JSON.parse(encodeCallError('ocpp2.0.1', 'i', 'FormationViolation', ''))[2]).toBe('FormatViolation');
    expect(JSON.parse(encodeCallError('ocpp2.1', 'i', 'OccurenceConstraintViolation', ''))[2]).toBe('OccurrenceConstraintViolation');
    expect(JSON.parse(encodeCallError('ocpp2.1', 'i', 'NoSuchCode', ''))[2]).toBe('GenericError');
    expect(JSON.parse(encodeCallResultError('i', 'FormationViolation'))[2]).toBe('FormatViolation');
  });

  it('encodeCallError fills missing description and details', () => {
    for (const p of ALL) expect(JSON.parse(encodeCallError(p, 'i', 'GenericError'))).toEqual([4, 'i', 'GenericError', '', {}]);
    expect(JSON.parse(encodeCallResultError('i', 'GenericError'))).toEqual([5, 'i', 'GenericError', '', {}]);
  });

  it('2.x cuts errorDescription to 255 characters; 1.6 does not', () => {
    const long = 'd'.repeat(400);
    for (const p of ['ocpp2.0.1', 'ocpp2.1'] as OcppProtocol[]) {
      expect(JSON.parse(encodeCallError(p, 'i', 'GenericError', long))[3]).toBe('d'.repeat(255));
    }
    expect(JSON.parse(encodeCallResultError('i', 'GenericError', long))[3]).toHaveLength(255);
    expect(JSON.parse(encodeCallError('ocpp1.6', 'i', 'GenericError', long))[3]).toBe(long);
  });

  it('does not cut a surrogate pair in half', () => {
    const text = 'a'.repeat(254) + '\u{1F50C}';
    const out = JSON.parse(encodeCallError('ocpp2.0.1', 'i', 'GenericError', text))[3] as string;
    expect(out).toBe('a'.repeat(254));
  });
});
