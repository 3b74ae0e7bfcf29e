import { describe, expect, it } from '@jest/globals';
import { answerVersion, versionFields, wireVersionOf } from '../../lib/cluster/envelope.js';
import { stampingWireVersion } from '../../lib/cluster/wire-version.js';
import { InMemoryAdapter } from '../../lib/cluster/in-memory-adapter.js';
import type { ClusterMessage } from '../../lib/cluster/envelope.js';
import { outcomeFromError, settleOutcome } from '../../lib/cluster/outcome.js';
import { IncompatibleVersionError } from '../../lib/protocol/errors.js';

describe('wire version', () => {
  it('reads an absent v as 1 and anything but a positive integer as unreadable (0)', () => {
    expect(wireVersionOf({})).toBe(1);
    expect(wireVersionOf({ v: 2 })).toBe(2);
    for (const v of [0, -1, 1.5, Number.NaN, '2', null]) expect(wireVersionOf({ v } as never)).toBe(0);
  });

  it('versions 3 and 4 changed no envelope: they write format 2 (version 2 nodes read it) and announce their own in `reads`', () => {
    expect(versionFields(1)).toEqual({});
    expect(versionFields(2)).toEqual({ v: 2 });
    expect(versionFields(3)).toEqual({ v: 2, reads: 3 });
    expect(versionFields(4)).toEqual({ v: 2, reads: 4 });
    // A later version that changes a format writes it (older nodes refuse it, typed).
    expect(versionFields(5)).toEqual({ v: 5 });
  });

  it('answers in the newest version the asker reads, up to its own', () => {
    expect(answerVersion(3, { v: 2, reads: 3 })).toBe(3);
    expect(answerVersion(2, { v: 2, reads: 3 })).toBe(2);
    expect(answerVersion(3, { v: 2 })).toBe(2);
    expect(answerVersion(3, {})).toBeUndefined();
    expect(answerVersion(4, { v: 2, reads: 4 })).toBe(4);
    expect(answerVersion(4, { v: 2, reads: 3 })).toBe(3);
    expect(answerVersion(3, { v: 2, reads: 4 })).toBe(3);
    expect(answerVersion(5, { v: 5 })).toBe(5);
    // A `reads` that is no valid version above `v` counts for nothing.
    for (const reads of [1, 2, 2.5, '3', null]) expect(answerVersion(3, { v: 2, reads } as never)).toBe(2);
  });

  it('the transport stamp writes the version fields on what has none, and keeps an answer\'s own', async () => {
    const adapter = new InMemoryAdapter();
    const published: ClusterMessage[] = [];
    adapter.publish = async (_to, message) => {
      published.push(message);
    };
    const stamped = stampingWireVersion(adapter, 3);
    await stamped.publish({ allNodes: true }, { kind: 'nodeLeft', nodeId: 'n1' });
    await stamped.publish({ allNodes: true }, { kind: 'reply', id: 'c1', from: 'n1', identity: 'CP1', outcome: { status: 'timeout', sent: false }, v: undefined });
    expect(published).toEqual([
      { kind: 'nodeLeft', nodeId: 'n1', v: 2, reads: 3 },
      { kind: 'reply', id: 'c1', from: 'n1', identity: 'CP1', outcome: { status: 'timeout', sent: false }, v: undefined },
    ]);
  });

  it('IncompatibleVersionError crosses nodes as an outcome and comes back typed', () => {
    const outcome = outcomeFromError(new IncompatibleVersionError('node-a', 3, 2));
    expect(outcome).toEqual({
      status: 'failed',
      errorCode: 'OCPP_INCOMPATIBLE_VERSION',
      message: expect.stringContaining('node node-a cannot read cluster wire version 3'),
      nodeId: 'node-a',
      receivedVersion: 3,
      supportedVersion: 2,
    });
    const settled = (() => {
      try {
        settleOutcome(JSON.parse(JSON.stringify(outcome)), { identity: 'CP1', action: 'Reset', timeoutMs: 1000 });
      } catch (error) {
        return error;
      }
      return null;
    })();
    expect(settled).toBeInstanceOf(IncompatibleVersionError);
    expect(settled).toMatchObject({ nodeId: 'node-a', receivedVersion: 3, supportedVersion: 2 });
  });
});
