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

describe('parseSubprotocols on long and untidy headers', () => {
  it('allows spaces and tabs around the commas, not inside a token', () => {
    expect(parseSubprotocols(' ocpp2.1 ,\tocpp1.6\t, ocpp2.0.1 ')).toEqual(['ocpp2.1', 'ocpp1.6', 'ocpp2.0.1']);
    expect(parseSubprotocols('ocpp2.1, ocpp\t1.6')).toBeNull();
  });

  it('refuses a duplicate wherever it is, also when spelled with other whitespace', () => {
    expect(parseSubprotocols('a, b, c, d, a')).toBeNull();
    expect(parseSubprotocols('ocpp1.6,\tocpp1.6 ')).toBeNull();
    // Tokens are case-sensitive (RFC 6455), so these are two different offers.
    expect(parseSubprotocols('ocpp1.6, OCPP1.6')).toEqual(['ocpp1.6', 'OCPP1.6']);
  });

  it('parses a header of 5,000 tokens (about 18 KB) completely, in order', () => {
    const tokens = Array.from({ length: 5_000 }, (_, i) => `t${i.toString(36)}`);
    expect(parseSubprotocols(tokens.join(', '))).toEqual(tokens);
    expect(parseSubprotocols([...tokens, tokens[2_500]].join(','))).toBeNull();
    expect(parseSubprotocols([...tokens, 'bad token'].join(','))).toBeNull();
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
