import { describe, expect, it, jest } from '@jest/globals';
import { frameObserver, redactSecrets, type OcppFrameRecord } from '../../lib/protocol/frame-log.js';

const record = (raw: string, message?: unknown[]): OcppFrameRecord => ({
  direction: 'in',
  identity: 'CP1',
  protocol: 'ocpp1.6',
  nodeId: 'n1',
  raw,
  message,
  at: 0,
});

describe('redactSecrets', () => {
  it('redacts GetConfiguration secrets and 2.x variable attributes, keeping the rest', () => {
    const message = [3, 'id', {
      configurationKey: [
        { key: 'AuthorizationKey', readonly: false, value: 'k' },
        { key: 'HeartbeatInterval', readonly: false, value: '300' },
      ],
      reportData: [{ component: { name: 'SecurityCtrlr' }, variable: { name: 'BasicAuthPassword' }, variableAttribute: [{ value: 'p' }] }],
    }];
    const redacted = redactSecrets(record(JSON.stringify(message), message));
    expect(redacted.message).toEqual([3, 'id', {
      configurationKey: [
        { key: 'AuthorizationKey', readonly: false, value: '***' },
        { key: 'HeartbeatInterval', readonly: false, value: '300' },
      ],
      reportData: [{ component: { name: 'SecurityCtrlr' }, variable: { name: 'BasicAuthPassword' }, variableAttribute: [{ value: '***' }] }],
    }]);
    expect(JSON.parse(redacted.raw)).toEqual(redacted.message);
    expect(message[2]).toHaveProperty('configurationKey.0.value', 'k'); // the original is not touched
  });

  it('redacts a frame that is not JSON textually', () => {
    const raw = '[2,"x","Authorize",{"idTag": "SECRET"';
    expect(redactSecrets(record(raw)).raw).toBe('[2,"x","Authorize",{"idTag": "***"');
  });
});

describe('frameObserver', () => {
  it('logs a hook that throws instead of throwing into the session', () => {
    const error = jest.fn();
    const observe = frameObserver({ onFrame: () => { throw new Error('disk full'); } }, { identity: 'CP1', protocol: 'ocpp1.6', nodeId: 'n1' }, { error });
    expect(() => observe('in', '[2,"1","Heartbeat",{}]')).not.toThrow();
    expect(error).toHaveBeenCalledWith('CP1: frame log hook failed: disk full');
  });
});
