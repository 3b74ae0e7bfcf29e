import { describe, expect, it } from '@jest/globals';
import { CertificateBinding } from '../../lib/gateway/client-certificate.js';
import { InvalidOptionsError } from '../../lib/protocol/errors.js';

describe('CertificateBinding options', () => {
  it('refuses an empty issuer set and a PEM that is no certificate, naming the option', () => {
    expect(() => new CertificateBinding({ issuers: [] })).toThrow(InvalidOptionsError);
    expect(() => new CertificateBinding({ issuers: [] })).toThrow(/issuers/);
    expect(() => new CertificateBinding({ issuers: '-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----' })).toThrow(/issuers\[0\]/);
  });
});
