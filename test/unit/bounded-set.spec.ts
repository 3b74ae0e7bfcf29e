import { describe, expect, it } from '@jest/globals';
import { BoundedSet } from '../../lib/cluster/bounded-set.js';

describe('BoundedSet (the recent keys of duplicate guards)', () => {
  it('remembers at most its capacity, forgetting the oldest first', () => {
    const set = new BoundedSet<string>(3);
    for (const key of ['a', 'b', 'c', 'd']) expect(set.add(key)).toBe(true);
    expect(set.size).toBe(3);
    expect(['a', 'b', 'c', 'd'].map((key) => set.has(key))).toEqual([false, true, true, true]);
    // Over many rounds the ring keeps the newest keys exactly.
    for (let i = 0; i < 100; i++) set.add(`k${i}`);
    expect(['k96', 'k97', 'k98', 'k99'].map((key) => set.has(key))).toEqual([false, true, true, true]);
    expect(set.size).toBe(3);
  });

  it('a key it knows is refused and does not count as new (it is forgotten as of its first add)', () => {
    const set = new BoundedSet<string>(2);
    set.add('a');
    expect(set.add('a')).toBe(false);
    set.add('b');
    set.add('c');
    expect(set.has('a')).toBe(false);
    expect(set.add('a')).toBe(true);
  });

  it('clear forgets everything', () => {
    const set = new BoundedSet<string>(2);
    set.add('a');
    set.add('b');
    set.clear();
    expect(set.size).toBe(0);
    expect(set.add('a')).toBe(true);
    expect(set.add('c')).toBe(true);
    expect(set.add('d')).toBe(true);
    expect([set.has('a'), set.has('c'), set.has('d')]).toEqual([false, true, true]);
  });
});
