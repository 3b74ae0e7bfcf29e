import { describe, expect, it } from '@jest/globals';
import { ANSWER_OVERHEAD_BYTES, AnsweredCalls } from '../../lib/protocol/answered-calls.js';
import { InvalidOptionsError } from '../../lib/protocol/errors.js';
import { resolveOptions } from '../../lib/resolve-options.js';
import { waitFor } from '../support/wait.js';

/** A CALL that arrives and is answered with `reply`; returns what the cache replayed instead, if anything. */
function answer(cache: AnsweredCalls, identity: string, id: string, action: string, payload: unknown, reply: string): string | undefined {
  const arrival = cache.arrive(identity, { id, action, payload });
  if (arrival.replay === undefined) cache.remember(arrival, reply);
  return arrival.replay;
}

const replayOf = (cache: AnsweredCalls, identity: string, id: string, action: string, payload: unknown) =>
  cache.arrive(identity, { id, action, payload }).replay;

/** A reply of exactly `bytes` bytes as the cache counts them (overhead included). */
const replySized = (bytes: number) => 'r'.repeat(bytes - ANSWER_OVERHEAD_BYTES);

describe('AnsweredCalls', () => {
  const ended = { eventType: 'Ended', seqNo: 7 };

  it('replays an answer by identity, id, action and payload only', () => {
    const answers = new AnsweredCalls();
    answer(answers, 'CP1', 'm1', 'TransactionEvent', ended, '[3,"m1",{}]');
    expect(replayOf(answers, 'CP1', 'm1', 'TransactionEvent', { ...ended })).toBe('[3,"m1",{}]');
    expect(replayOf(answers, 'CP1', 'm1', 'Heartbeat', ended)).toBeUndefined();
    expect(replayOf(answers, 'CP2', 'm1', 'TransactionEvent', ended)).toBeUndefined();
    expect(replayOf(answers, 'CP1', 'm2', 'TransactionEvent', ended)).toBeUndefined();
  });

  it('compares the payload by digest: the same id with other content runs the handler, and its answer replaces the first', () => {
    const answers = new AnsweredCalls();
    expect(answer(answers, 'CP1', 'm1', 'TransactionEvent', ended, 'first')).toBeUndefined();
    // A rebooted charger counting its ids from the start again sends other content: not a retry.
    expect(answer(answers, 'CP1', 'm1', 'TransactionEvent', { eventType: 'Started', seqNo: 0 }, 'second')).toBeUndefined();
    expect(replayOf(answers, 'CP1', 'm1', 'TransactionEvent', { eventType: 'Started', seqNo: 0 })).toBe('second');
    expect(replayOf(answers, 'CP1', 'm1', 'TransactionEvent', ended)).toBeUndefined();
    expect(answers.size).toBe(1);
  });

  it('keeps a digest of the request, not its text: only the reply counts against the bounds', () => {
    const answers = new AnsweredCalls();
    const bigRequest = { vendorId: 'acme', data: 'x'.repeat(50_000) };
    answer(answers, 'CP1', 'd1', 'DataTransfer', bigRequest, '[3,"d1",{"status":"Accepted"}]');
    expect(answers.bytes).toBe('[3,"d1",{"status":"Accepted"}]'.length + ANSWER_OVERHEAD_BYTES);
    expect(replayOf(answers, 'CP1', 'd1', 'DataTransfer', { vendorId: 'acme', data: 'x'.repeat(50_000) })).toBe('[3,"d1",{"status":"Accepted"}]');
    expect(replayOf(answers, 'CP1', 'd1', 'DataTransfer', { vendorId: 'acme', data: 'y'.repeat(50_000) })).toBeUndefined();
  });

  it('bounds the bytes per charge point, dropping its oldest answers first and leaving others alone', () => {
    const answers = new AnsweredCalls({ maxBytesPerChargePoint: 10_000, maxBytesPerNode: 1_000_000 });
    answer(answers, 'OTHER', 'o1', 'A', {}, replySized(4_000));
    for (const id of ['a', 'b', 'c', 'd']) answer(answers, 'CP1', id, 'A', {}, replySized(4_000));
    expect(answers.bytesOf('CP1')).toBe(8_000);
    expect(replayOf(answers, 'CP1', 'a', 'A', {})).toBeUndefined();
    expect(replayOf(answers, 'CP1', 'b', 'A', {})).toBeUndefined();
    expect(replayOf(answers, 'CP1', 'c', 'A', {})).toBe(replySized(4_000));
    expect(replayOf(answers, 'CP1', 'd', 'A', {})).toBe(replySized(4_000));
    expect(answers.bytesOf('OTHER')).toBe(4_000);
    expect(answers.bytes).toBe(12_000);
  });

  it('bounds the bytes per node, dropping the node-wide oldest answers first', () => {
    const answers = new AnsweredCalls({ maxBytesPerChargePoint: 10_000, maxBytesPerNode: 25_000 });
    for (let cp = 1; cp <= 10; cp++) answer(answers, `CP${cp}`, 'm', 'A', {}, replySized(5_000));
    expect(answers.bytes).toBe(25_000);
    expect(answers.size).toBe(5);
    for (let cp = 1; cp <= 5; cp++) expect(replayOf(answers, `CP${cp}`, 'm', 'A', {})).toBeUndefined();
    for (let cp = 6; cp <= 10; cp++) expect(replayOf(answers, `CP${cp}`, 'm', 'A', {})).toBe(replySized(5_000));
  });

  it('does not keep a reply larger than the per-charge-point bound, and forgets what it replaced', () => {
    const answers = new AnsweredCalls({ maxBytesPerChargePoint: 10_000, maxBytesPerNode: 1_000_000 });
    answer(answers, 'CP1', 'small', 'A', {}, 'small reply');
    answer(answers, 'CP1', 'big', 'A', {}, replySized(10_001));
    expect(replayOf(answers, 'CP1', 'big', 'A', {})).toBeUndefined();
    expect(replayOf(answers, 'CP1', 'small', 'A', {})).toBe('small reply');
    answer(answers, 'CP1', 'small', 'A', { other: true }, replySized(20_000));
    expect(answers.size).toBe(0);
    expect(answers.bytes).toBe(0);
  });

  it('stops replaying an answer at its TTL', () => {
    let now = 1_000;
    const answers = new AnsweredCalls({ ttlMs: 100 }, () => now);
    answer(answers, 'CP1', 'old', 'A', {}, 'old-reply');
    now += 60;
    answer(answers, 'CP1', 'new', 'A', {}, 'new-reply');
    now += 60; // "old" is 120 ms old, "new" 60 ms
    expect(replayOf(answers, 'CP1', 'old', 'A', {})).toBeUndefined();
    expect(replayOf(answers, 'CP1', 'new', 'A', {})).toBe('new-reply');
    answers.clear();
  });

  it('frees expired answers without any traffic (its own timer)', async () => {
    const answers = new AnsweredCalls({ ttlMs: 50 });
    for (let i = 0; i < 20; i++) answer(answers, `CP${i % 3}`, `m${i}`, 'DataTransfer', { i }, replySized(1_000));
    expect(answers.bytes).toBe(20_000);
    await waitFor('the cache to empty itself', () => answers.size === 0, { timeoutMs: 5_000 });
    expect(answers.bytes).toBe(0);
    expect(['CP0', 'CP1', 'CP2'].map((identity) => answers.bytesOf(identity))).toEqual([0, 0, 0]);
  });

  it('never replays a BootNotification, and forgets what the charge point was answered before it', () => {
    const answers = new AnsweredCalls();
    const boot = { reason: 'PowerUp', chargingStation: { model: 'M', vendorName: 'V' } };
    answer(answers, 'CP1', '1', 'Heartbeat', {}, 'heartbeat before the boot');
    answer(answers, 'OTHER', '1', 'Heartbeat', {}, 'other heartbeat');
    expect(answer(answers, 'CP1', '0', 'BootNotification', boot, 'boot answer')).toBeUndefined();
    expect(answer(answers, 'CP1', '0', 'BootNotification', boot, 'boot answer')).toBeUndefined();
    expect(replayOf(answers, 'CP1', '1', 'Heartbeat', {})).toBeUndefined();
    expect(replayOf(answers, 'OTHER', '1', 'Heartbeat', {})).toBe('other heartbeat');
    // After the boot, retries are replayed again.
    answer(answers, 'CP1', '1', 'Heartbeat', {}, 'heartbeat after the boot');
    expect(replayOf(answers, 'CP1', '1', 'Heartbeat', {})).toBe('heartbeat after the boot');
    expect(answers.bytesOf('CP1')).toBe('heartbeat after the boot'.length + ANSWER_OVERHEAD_BYTES);
  });

  it('does not keep the answer to a call sent before a boot that arrived while it ran', () => {
    const answers = new AnsweredCalls();
    const slow = answers.arrive('CP1', { id: '7', action: 'TransactionEvent', payload: ended });
    answers.arrive('CP1', { id: '0', action: 'BootNotification', payload: {} });
    answers.remember(slow, 'answer to the old socket');
    expect(replayOf(answers, 'CP1', '7', 'TransactionEvent', ended)).toBeUndefined();
    expect(answers.size).toBe(0);
  });

  it('does not keep the answer to a call that arrived longer ago than the TTL', () => {
    let now = 1_000;
    const answers = new AnsweredCalls({ ttlMs: 100 }, () => now);
    const slow = answers.arrive('CP1', { id: '7', action: 'A', payload: {} });
    now += 100;
    answers.remember(slow, 'too late');
    expect(answers.size).toBe(0);
  });
});

describe('retryCache options', () => {
  it('defaults to 2 minutes, 256 KiB per charge point and 32 MiB per node, and takes partial overrides', () => {
    expect(resolveOptions({ nodeId: 'n' }).retryCache).toEqual({ ttlMs: 120_000, maxBytesPerChargePoint: 262_144, maxBytesPerNode: 33_554_432 });
    expect(resolveOptions({ nodeId: 'n', retryCache: { ttlMs: 30_000 } }).retryCache.ttlMs).toBe(30_000);
  });

  it.each([
    [{ ttlMs: 0 }, 'retryCache.ttlMs'],
    [{ maxBytesPerChargePoint: 1.5 }, 'retryCache.maxBytesPerChargePoint'],
    [{ maxBytesPerNode: -1 }, 'retryCache.maxBytesPerNode'],
    [{ maxBytesPerChargePoint: 2_000, maxBytesPerNode: 1_000 }, 'retryCache.maxBytesPerNode'],
    [null, 'retryCache'],
  ])('refuses %j naming %s', (retryCache, name) => {
    const build = () => resolveOptions({ nodeId: 'n', retryCache: retryCache as never });
    expect(build).toThrow(InvalidOptionsError);
    expect(build).toThrow(name);
  });
});
