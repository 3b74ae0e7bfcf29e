import { describe, expect, it } from '@jest/globals';
import { wireVersionOf } from '../../lib/cluster/envelope.js';
import { outcomeFromError, settleOutcome } from '../../lib/cluster/outcome.js';
import { IncompatibleVersionError } from '../../lib/protocol/errors.js';

describe('wire version', () => {
  it('reads an absent v as 1 and anything but a positive integer as unreadable (0)', () => {
    expect(wireVersionOf({})).toBe(1);
    expect(wireVersionOf({ v: 2 })).toBe(2);
    for (const v of [0, -1, 1.5, Number.NaN, '2', null]) expect(wireVersionOf({ v } as never)).toBe(0);
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
