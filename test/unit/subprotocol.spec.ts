import { negotiateSubprotocol, parseSubprotocols } from '../../lib/gateway/subprotocol.js';

describe('parseSubprotocols', () => {
  it('keeps the client order', () => {
    expect(parseSubprotocols(undefined)).toEqual([]);
    expect(parseSubprotocols('ocpp1.6')).toEqual(['ocpp1.6']);
    expect(parseSubprotocols('ocpp2.0.1, ocpp1.6,ocpp2.1')).toEqual(['ocpp2.0.1', 'ocpp1.6', 'ocpp2.1']);
  });

  it('refuses malformed values', () => {
    for (const header of ['', ',', 'ocpp1.6,', 'ocpp1.6,,ocpp2.1', 'ocpp 1.6', 'ocpp1.6;q=1', 'ocpp1.6, ocpp1.6']) {
      expect(parseSubprotocols(header)).toBeNull();
    }
  });
});

describe('negotiateSubprotocol', () => {
  it("follows the client's preference, not ours", () => {
    expect(negotiateSubprotocol(['ocpp1.6', 'ocpp2.0.1'], ['ocpp2.0.1', 'ocpp1.6'])).toBe('ocpp1.6');
    expect(negotiateSubprotocol(['ocpp2.0.1', 'ocpp1.6'], ['ocpp1.6', 'ocpp2.0.1'])).toBe('ocpp2.0.1');
  });

  it('skips what we do not support', () => {
    expect(negotiateSubprotocol(['ocpp1.5', 'ocpp2.1', 'ocpp1.6'], ['ocpp1.6'])).toBe('ocpp1.6');
  });

  it('is null without a common protocol', () => {
    expect(negotiateSubprotocol([], ['ocpp1.6'])).toBeNull();
    expect(negotiateSubprotocol(['ocpp1.5', 'OCPP1.6'], ['ocpp1.6', 'ocpp2.0.1'])).toBeNull();
  });
});
