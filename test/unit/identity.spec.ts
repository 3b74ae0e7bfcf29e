import { identityFromPath, normalizeBasePath, rawPathname, validateIdentity } from '../../lib/gateway/identity.js';

describe('identityFromPath', () => {
  it('takes the one segment after the base path', () => {
    expect(identityFromPath('/ocpp/CP01', '/ocpp')).toEqual({ ok: true, identity: 'CP01' });
    expect(identityFromPath('/csms/v1/CP01', '/csms/v1')).toEqual({ ok: true, identity: 'CP01' });
    expect(identityFromPath('/CP01', '')).toEqual({ ok: true, identity: 'CP01' });
  });

  it('is null for paths outside the endpoint', () => {
    expect(identityFromPath('/ocpp', '/ocpp')).toBeNull();
    expect(identityFromPath('/ocpp/CP01/', '/ocpp')).toBeNull();
    expect(identityFromPath('/ocpp/CP01/extra', '/ocpp')).toBeNull();
    expect(identityFromPath('/other/CP01', '/ocpp')).toBeNull();
    expect(identityFromPath('/ocppx/CP01', '/ocpp')).toBeNull();
    expect(identityFromPath('//ocpp/CP01', '/ocpp')).toBeNull();
    expect(identityFromPath('/OCPP/CP01', '/ocpp')).toBeNull();
  });

  it('gives an empty identity for "/ocpp/" so that it is refused as bad, not unknown', () => {
    expect(identityFromPath('/ocpp/', '/ocpp')).toEqual({ ok: true, identity: '' });
  });

  it('splits before percent-decoding', () => {
    expect(identityFromPath('/ocpp/CP%2F01', '/ocpp')).toEqual({ ok: true, identity: 'CP/01' });
    expect(identityFromPath('/ocpp/CP-%C3%A9', '/ocpp')).toEqual({ ok: true, identity: 'CP-é' });
    expect(identityFromPath('/ocpp%2FCP01', '/ocpp')).toBeNull();
  });

  it('reports bad percent-encoding', () => {
    for (const segment of ['CP%ZZ', 'CP%', 'CP%4', 'CP%C3', 'CP%C0%AF', 'CP%ED%A0%80']) {
      expect(identityFromPath(`/ocpp/${segment}`, '/ocpp')).toEqual({ ok: false, reason: 'bad percent-encoding' });
    }
  });
});

describe('rawPathname', () => {
  it('drops query and fragment without decoding or normalising', () => {
    expect(rawPathname('/ocpp/CP01?a=1')).toBe('/ocpp/CP01');
    expect(rawPathname('/ocpp/CP01#x')).toBe('/ocpp/CP01');
    expect(rawPathname('/ocpp/../CP%2F01?x#y')).toBe('/ocpp/../CP%2F01');
  });

  it('reduces an absolute-form target to its path', () => {
    expect(rawPathname('http://example.com:8080/ocpp/CP01?x=1')).toBe('/ocpp/CP01');
    expect(rawPathname('ws://example.com')).toBe('/');
  });
});

describe('normalizeBasePath', () => {
  it('drops trailing slashes and refuses what cannot be matched raw', () => {
    expect(normalizeBasePath('/ocpp')).toBe('/ocpp');
    expect(normalizeBasePath('/ocpp/')).toBe('/ocpp');
    expect(normalizeBasePath('/')).toBe('');
    expect(normalizeBasePath('/a/b')).toBe('/a/b');
    expect(normalizeBasePath('ocpp')).toBeNull();
    expect(normalizeBasePath('')).toBeNull();
    expect(normalizeBasePath('/oc%20pp')).toBeNull();
    expect(normalizeBasePath('/ocpp?x')).toBeNull();
    expect(normalizeBasePath('//ocpp')).toBeNull();
  });
});

describe('validateIdentity', () => {
  it('accepts ordinary identities', () => {
    for (const identity of ['CP01', 'DE-ABC-E123', 'CP-é', 'a.b_c-d=e+f|g@h', 'x'.repeat(48), '%']) {
      expect(validateIdentity(identity)).toBeNull();
    }
  });

  it('refuses empty and over-long identities, counting characters not UTF-16 units', () => {
    expect(validateIdentity('')).toMatch(/empty/);
    expect(validateIdentity('x'.repeat(49))).toMatch(/longer than 48/);
    expect(validateIdentity('é'.repeat(48))).toBeNull();
    expect(validateIdentity('😀'.repeat(48))).toBeNull();
    expect(validateIdentity('x'.repeat(11), { maxLength: 10 })).toMatch(/longer than 10/);
  });

  it('refuses control, invisible and whitespace characters', () => {
    for (const c of ['\u0000', '\u0001', '\n', '\u001f', '\u007f', '\u0085', '\u200b', '\u202e', '\ufeff', ' ', '\t', '\u00a0', '\u2028']) {
      expect(validateIdentity(`CP${c}01`)).toMatch(/forbidden character U\+/);
    }
  });

  it('refuses characters that break Redis keys, Basic auth or paths', () => {
    for (const c of [':', '{', '}', '*', '?', '[', ']', '\\', '/']) {
      expect(validateIdentity(`CP${c}01`)).toBe(`identity contains a forbidden character "${c}"`);
    }
    expect(validateIdentity('.')).toMatch(/dot segment/);
    expect(validateIdentity('..')).toMatch(/dot segment/);
  });

  it('applies the configured pattern, also a stateful /g one', () => {
    const pattern = /^CP\d+$/g;
    expect(validateIdentity('CP01', { pattern })).toBeNull();
    expect(validateIdentity('CP01', { pattern })).toBeNull();
    expect(validateIdentity('XX01', { pattern })).toMatch(/pattern/);
  });
});
