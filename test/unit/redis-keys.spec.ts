import { InvalidOptionsError } from '../../lib/protocol/errors.js';
import {
  crc16,
  groupBySlot,
  hashTagOf,
  InvalidKeyPartError,
  keySlot,
  RedisKeys,
} from '../../lib/redis/redis-keys.js';

describe('Redis key layout', () => {
  const keys = new RedisKeys();

  it('uses the documented names under the default prefix', () => {
    expect(keys.alive('n1')).toBe('ocpp-cluster:{n:n1}:alive');
    expect(keys.stream('n1')).toBe('ocpp-cluster:{n:n1}:stream');
    expect(keys.replies('n1')).toBe('ocpp-cluster:{n:n1}:replies');
    expect(keys.owned('n1')).toBe('ocpp-cluster:{n:n1}:owned');
    expect(keys.takeoverLock('n1')).toBe('ocpp-cluster:{n:n1}:takeover');
    expect(keys.presence('CP-1')).toBe('ocpp-cluster:{p:CP-1}');
    expect(keys.presenceEpoch('CP-1')).toBe('ocpp-cluster:{p:CP-1}:epoch');
    expect(keys.registry).toBe('ocpp-cluster:nodes');
    expect(keys.broadcastChannel).toBe('ocpp-cluster:broadcast');
  });

  it('puts every key of one node in one slot, and a presence entry with its epoch counter', () => {
    for (const node of ['n1', 'node-b', 'host.example.com-4f2a']) {
      const slots = new Set([keys.alive(node), keys.stream(node), keys.replies(node), keys.owned(node), keys.takeoverLock(node)].map(keySlot));
      expect(slots.size).toBe(1);
    }
    for (const identity of ['CP-1', 'é-station', 'a'.repeat(48)]) {
      expect(keySlot(keys.presence(identity))).toBe(keySlot(keys.presenceEpoch(identity)));
    }
  });

  it('spreads different charge points over different slots', () => {
    const slots = new Set(Array.from({ length: 200 }, (_, i) => keySlot(keys.presence(`CP-${i}`))));
    expect(slots.size).toBeGreaterThan(190);
  });

  it('hashes like Redis Cluster (CRC16/XMODEM, hash tags)', () => {
    expect(crc16(Buffer.from('123456789'))).toBe(0x31c3);
    expect(keySlot('foo')).toBe(12182);
    expect(keySlot('bar')).toBe(5061);
    expect(keySlot('{user1000}.following')).toBe(keySlot('{user1000}.followers'));
    expect(hashTagOf('foo{}{bar}')).toBe('foo{}{bar}');
    expect(hashTagOf('foo{{bar}}zap')).toBe('{bar');
    expect(hashTagOf('foo{bar}{zap}')).toBe('bar');
  });

  it.each([
    ['a hash-tag brace', 'CP{1'],
    ['a closing brace', 'CP}1'],
    ['a glob star', 'CP*'],
    ['a glob bracket', 'CP[1]'],
    ['a control character', 'CP\n1'],
    ['a NUL', 'CP\u00001'],
    ['a bidi override', 'CP\u202e1'],
    ['a space', 'CP 1'],
    ['nothing', ''],
    ['too many characters', 'x'.repeat(257)],
  ])('refuses an identity with %s (typed error)', (_what, identity) => {
    expect(() => keys.presence(identity)).toThrow(InvalidKeyPartError);
    try {
      keys.presence(identity);
    } catch (error) {
      expect((error as InvalidKeyPartError).code).toBe('OCPP_INVALID_KEY_PART');
      expect((error as InvalidKeyPartError).kind).toBe('identity');
    }
  });

  it('refuses node ids the same way', () => {
    expect(() => keys.stream('a}b')).toThrow(InvalidKeyPartError);
  });

  it('refuses a prefix that would carry its own hash tag', () => {
    expect(() => new RedisKeys('app{x}:')).toThrow(InvalidOptionsError);
    expect(new RedisKeys('app:').stream('n')).toBe('app:{n:n}:stream');
  });

  it('groups items by slot, keeping their order', () => {
    const identities = ['a', 'b', 'a', 'c'];
    const groups = groupBySlot(identities, (identity) => keys.presence(identity));
    const flat = [...groups.values()];
    expect(flat.flat().sort()).toEqual(['a', 'a', 'b', 'c']);
    expect(flat.find((group) => group.includes('a'))).toEqual(['a', 'a']);
  });
});
