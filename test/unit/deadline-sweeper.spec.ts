import { describe, expect, it } from '@jest/globals';
import { DeadlineSweeper } from '../../lib/cluster/deadline-sweeper.js';
import { waitFor } from '../support/wait.js';

describe('deadline sweeper (one timer for many deadlines)', () => {
  it('expires each key at or after its deadline, in deadline order, and never a removed one', async () => {
    const expired: Array<{ key: string; at: number }> = [];
    const sweeper = new DeadlineSweeper<string>((key) => expired.push({ key, at: Date.now() }), 10);
    const now = Date.now();
    const deadlines = { late: now + 120, early: now + 30, middle: now + 60, removed: now + 40 };
    const slots = new Map(Object.entries(deadlines).map(([key, deadline]) => [key, sweeper.add(key, deadline)]));
    sweeper.remove('removed', slots.get('removed')!);

    await waitFor('three keys expired', () => expired.length === 3);
    expect(expired.map(({ key }) => key)).toEqual(['early', 'middle', 'late']);
    for (const { key, at } of expired) expect(at).toBeGreaterThanOrEqual(deadlines[key as keyof typeof deadlines]);
  });

  it('re-arms for an earlier deadline added after a later one', async () => {
    const expired: string[] = [];
    const sweeper = new DeadlineSweeper<string>((key) => expired.push(key), 10);
    sweeper.add('in an hour', Date.now() + 3_600_000);
    sweeper.add('soon', Date.now() + 20);

    await waitFor('the early key expired', () => expired.length === 1);
    expect(expired).toEqual(['soon']);
    sweeper.clear();
  });
});
