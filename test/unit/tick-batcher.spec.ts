import { describe, expect, it } from '@jest/globals';
import { TickBatcher } from '../../lib/redis/tick-batcher.js';

/** One batch handed to runBatch, answered when the test says so. */
interface HeldBatch {
  inputs: number[];
  answer(outcomes?: Array<string | Error>): void;
  fail(error: Error): void;
}

function heldBatcher(holdBackMs?: number): { batcher: TickBatcher<number, string>; batches: HeldBatch[] } {
  const batches: HeldBatch[] = [];
  const batcher = new TickBatcher<number, string>(
    (inputs) =>
      new Promise((resolve, reject) => {
        batches.push({
          inputs,
          answer: (outcomes) => resolve(outcomes ?? inputs.map((input) => `ok ${input}`)),
          fail: reject,
        });
      }),
    holdBackMs,
  );
  return { batcher, batches };
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function until(what: string, condition: () => boolean, boundMs = 5_000): Promise<void> {
  const giveUpAt = Date.now() + boundMs;
  while (!condition()) {
    if (Date.now() > giveUpAt) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('TickBatcher (presence writes of a connection storm share script calls)', () => {
  it('requests of one turn go as one batch, each answered with its own outcome', async () => {
    const { batcher, batches } = heldBatcher();
    const answers = [1, 2, 3].map((input) => batcher.add(input));
    await nextTurn();
    expect(batches.map((batch) => batch.inputs)).toEqual([[1, 2, 3]]);
    batches[0].answer(['ok 1', new Error('refused 2'), 'ok 3']);
    const settled = await Promise.allSettled(answers);
    expect(settled.map((outcome) => (outcome.status === 'fulfilled' ? outcome.value : (outcome.reason as Error).message))).toEqual([
      'ok 1',
      'refused 2',
      'ok 3',
    ]);
  });

  it('requests that arrive while a batch is in flight wait for it and then go together, in order', async () => {
    const { batcher, batches } = heldBatcher(60_000);
    const first = batcher.add(1);
    await nextTurn();
    expect(batches).toHaveLength(1);
    // Three more turns, one request each (a busy node accepting one socket per turn).
    const later: Array<Promise<string>> = [];
    for (const input of [2, 3, 4]) {
      later.push(batcher.add(input));
      await nextTurn();
      await nextTurn();
    }
    expect(batches).toHaveLength(1);
    expect(batcher.batchesInFlight).toBe(1);
    batches[0].answer();
    await expect(first).resolves.toBe('ok 1');
    await until('the next batch', () => batches.length === 2);
    expect(batches[1].inputs).toEqual([2, 3, 4]);
    batches[1].answer();
    await expect(Promise.all(later)).resolves.toEqual(['ok 2', 'ok 3', 'ok 4']);
    expect(batcher.batchesInFlight).toBe(0);
  });

  it('a failed batch fails its own requests only, and the next one goes', async () => {
    const { batcher, batches } = heldBatcher(60_000);
    const first = batcher.add(1);
    await nextTurn();
    const second = batcher.add(2);
    batches[0].fail(new Error('connection lost'));
    await expect(first).rejects.toThrow('connection lost');
    await until('the next batch', () => batches.length === 2);
    batches[1].answer();
    await expect(second).resolves.toBe('ok 2');
  });

  it('a runBatch that throws at once fails its batch and does not block the next', async () => {
    let calls = 0;
    const batcher = new TickBatcher<number, string>((inputs) => {
      calls++;
      if (calls === 1) throw new Error('bad input');
      return Promise.resolve(inputs.map((input) => `ok ${input}`));
    }, 60_000);
    await expect(batcher.add(1)).rejects.toThrow('bad input');
    await expect(batcher.add(2)).resolves.toBe('ok 2');
    expect(batcher.batchesInFlight).toBe(0);
  });

  it('a batch stuck past holdBackMs (a stalled server) no longer holds back the next', async () => {
    const { batcher, batches } = heldBatcher(40);
    const stuck = batcher.add(1);
    await nextTurn();
    const next = batcher.add(2);
    await nextTurn();
    // Held back at first: the stuck batch is still the only one.
    expect(batches).toHaveLength(1);
    await until('the held-back batch to go after holdBackMs', () => batches.length === 2);
    expect(batches[1].inputs).toEqual([2]);
    expect(batcher.batchesInFlight).toBe(2);
    batches[1].answer();
    await expect(next).resolves.toBe('ok 2');
    batches[0].answer();
    await expect(stuck).resolves.toBe('ok 1');
    expect(batcher.batchesInFlight).toBe(0);
  });
});
