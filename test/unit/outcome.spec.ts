import { outcomeFromError, settleOutcome } from '../../lib/cluster/outcome.js';
import { ClusterUnavailableError, ConnectionClosedError, LeaseLostError, NotConnectedError } from '../../lib/protocol/errors.js';

const call = { identity: 'CP1', action: 'Reset', timeoutMs: 1000 };

function settled(error: unknown): unknown {
  try {
    settleOutcome(outcomeFromError(error), call);
  } catch (thrown) {
    return thrown;
  }
  throw new Error('expected a rejection');
}

describe('outcomes that cross nodes keep what the caller may rely on', () => {
  it('a socket that closed after the CALL was written may have delivered it; one that closed before did not', () => {
    const written = settled(new ConnectionClosedError('CP1', 1006, true)) as NotConnectedError;
    const queued = settled(new ConnectionClosedError('CP1', 1006, false)) as NotConnectedError;
    expect(written).toBeInstanceOf(NotConnectedError);
    expect(written.maybeDelivered).toBe(true);
    expect(queued.maybeDelivered).toBe(false);
  });

  it('an owner that could not tell the truth (Redis unavailable, lease not proven) is unavailable on the caller, never not connected', () => {
    expect(settled(new ClusterUnavailableError('stalled'))).toBeInstanceOf(ClusterUnavailableError);
    const leaseLost = outcomeFromError(new LeaseLostError('node-b'));
    expect(leaseLost).toMatchObject({ status: 'failed', errorCode: 'OCPP_LEASE_LOST' });
  });
});
