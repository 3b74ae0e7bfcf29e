import { AnsweredCalls } from '../../lib/protocol/answered-calls.js';

describe('AnsweredCalls', () => {
  const ended = { eventType: 'Ended', seqNo: 7 };

  it('replays an answer by identity, id, action and payload only', () => {
    const answers = new AnsweredCalls();
    answers.remember('CP1', 'm1', 'TransactionEvent', ended, '[3,"m1",{}]');
    expect(answers.replayFor('CP1', 'm1', 'TransactionEvent', { ...ended })).toBe('[3,"m1",{}]');
    expect(answers.replayFor('CP1', 'm1', 'Heartbeat', ended)).toBeUndefined();
    expect(answers.replayFor('CP2', 'm1', 'TransactionEvent', ended)).toBeUndefined();
    expect(answers.replayFor('CP1', 'm2', 'TransactionEvent', ended)).toBeUndefined();
    // A charger that rebooted and counts its ids from the start again sends other content: not a retry.
    expect(answers.replayFor('CP1', 'm1', 'TransactionEvent', { eventType: 'Started', seqNo: 0 })).toBeUndefined();
  });

  it('forgets answers older than its TTL', () => {
    let now = 1_000;
    const answers = new AnsweredCalls({ ttlMs: 100 }, () => now);
    answers.remember('CP1', 'old', 'A', {}, 'old-reply');
    now += 60;
    answers.remember('CP1', 'new', 'A', {}, 'new-reply');
    now += 60; // "old" is 120 ms old, "new" 60 ms
    expect(answers.replayFor('CP1', 'old', 'A', {})).toBeUndefined();
    expect(answers.replayFor('CP1', 'new', 'A', {})).toBe('new-reply');
    expect(answers.size).toBe(1);
  });

  it('keeps at most maxEntries, dropping the oldest first', () => {
    const answers = new AnsweredCalls({ maxEntries: 3 });
    for (const id of ['a', 'b', 'c', 'd']) answers.remember('CP1', id, 'A', {}, id);
    expect(answers.size).toBe(3);
    expect(answers.replayFor('CP1', 'a', 'A', {})).toBeUndefined();
    expect(answers.replayFor('CP1', 'd', 'A', {})).toBe('d');
  });
});
