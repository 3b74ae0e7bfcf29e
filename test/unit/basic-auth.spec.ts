import { basicAuthPasswordFor, parseBasicAuth } from '../../lib/gateway/basic-auth.js';

const basic = (bytes: Buffer): string => `Basic ${bytes.toString('base64')}`;

describe('parseBasicAuth', () => {
  it('keeps a binary password byte for byte, colons included', () => {
    const password = Buffer.from([0x00, 0xff, 0x3a, 0x80, 0xc3, 0x28, 0x0a, 0x7f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0xfe]);
    const parsed = parseBasicAuth(basic(Buffer.concat([Buffer.from('CP01:'), password])));
    expect(parsed?.username).toBe('CP01');
    expect(parsed?.password.equals(password)).toBe(true);
  });

  it('accepts the scheme in any case and an empty password', () => {
    expect(parseBasicAuth(`bAsIc ${Buffer.from('CP01:').toString('base64')}`)).toEqual({ username: 'CP01', password: Buffer.alloc(0) });
  });

  it('decodes a UTF-8 username', () => {
    expect(parseBasicAuth(basic(Buffer.from('CP-é:pw')))?.username).toBe('CP-é');
  });

  it('is null for anything else', () => {
    expect(parseBasicAuth(undefined)).toBeNull();
    expect(parseBasicAuth('Bearer abc')).toBeNull();
    expect(parseBasicAuth('Basic')).toBeNull();
    expect(parseBasicAuth('Basic !!!!')).toBeNull();
    expect(parseBasicAuth('Basic a')).toBeNull();
    expect(parseBasicAuth(basic(Buffer.from('no-colon')))).toBeNull();
    expect(parseBasicAuth(basic(Buffer.from([0xc3, 0x28, 0x3a, 0x41])))).toBeNull(); // username not UTF-8
  });
});

describe('basicAuthPasswordFor', () => {
  it('gives the password only to the identity named as username', () => {
    const header = basic(Buffer.from('CP01:secret'));
    expect(basicAuthPasswordFor(header, 'CP01')?.toString()).toBe('secret');
    expect(basicAuthPasswordFor(header, 'CP02')).toBeUndefined();
    expect(basicAuthPasswordFor(undefined, 'CP01')).toBeUndefined();
  });
});
