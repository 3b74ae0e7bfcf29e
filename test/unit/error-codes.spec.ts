import {
  errorCodesFor,
  isKnownErrorCode,
  normalizeErrorCode,
  OCPP16_ERROR_CODES,
  OCPP2_ERROR_CODES,
} from '../../lib/protocol/error-codes.js';
import type { OcppProtocol } from '../../lib/protocol/protocol.js';

const V2: OcppProtocol[] = ['ocpp2.0.1', 'ocpp2.1'];

describe('error code lists', () => {
  it('1.6 keeps the errata spellings', () => {
    expect(OCPP16_ERROR_CODES).toContain('OccurenceConstraintViolation');
    expect(OCPP16_ERROR_CODES).toContain('FormationViolation');
    expect(OCPP16_ERROR_CODES).not.toContain('OccurrenceConstraintViolation');
    expect(OCPP16_ERROR_CODES).not.toContain('FormatViolation');
    expect(OCPP16_ERROR_CODES).not.toContain('RpcFrameworkError');
    expect(OCPP16_ERROR_CODES).toHaveLength(10);
  });

  it('2.x has the framework codes and the corrected spellings', () => {
    for (const code of ['OccurrenceConstraintViolation', 'FormatViolation', 'RpcFrameworkError', 'MessageTypeNotSupported']) {
      expect(OCPP2_ERROR_CODES).toContain(code);
    }
    expect(OCPP2_ERROR_CODES).not.toContain('FormationViolation');
    expect(OCPP2_ERROR_CODES).not.toContain('OccurenceConstraintViolation');
    expect(OCPP2_ERROR_CODES).toHaveLength(12);
  });

  it('errorCodesFor picks the version list', () => {
    expect(errorCodesFor('ocpp1.6')).toBe(OCPP16_ERROR_CODES);
    expect(errorCodesFor('ocpp2.0.1')).toBe(OCPP2_ERROR_CODES);
    expect(errorCodesFor('ocpp2.1')).toBe(OCPP2_ERROR_CODES);
  });
});

describe('normalizeErrorCode', () => {
  it('keeps every code that is valid in its version', () => {
    for (const code of OCPP16_ERROR_CODES) expect(normalizeErrorCode('ocpp1.6', code)).toBe(code);
    for (const p of V2) for (const code of OCPP2_ERROR_CODES) expect(normalizeErrorCode(p, code)).toBe(code);
  });

  it('maps 2.x spellings to 1.6 spellings', () => {
    expect(normalizeErrorCode('ocpp1.6', 'FormatViolation')).toBe('FormationViolation');
    expect(normalizeErrorCode('ocpp1.6', 'OccurrenceConstraintViolation')).toBe('OccurenceConstraintViolation');
  });

  it('maps 1.6 spellings to 2.x spellings', () => {
    for (const p of V2) {
      expect(normalizeErrorCode(p, 'FormationViolation')).toBe('FormatViolation');
      expect(normalizeErrorCode(p, 'OccurenceConstraintViolation')).toBe('OccurrenceConstraintViolation');
    }
  });

  it('maps 2.x-only codes to GenericError on 1.6', () => {
    expect(normalizeErrorCode('ocpp1.6', 'RpcFrameworkError')).toBe('GenericError');
    expect(normalizeErrorCode('ocpp1.6', 'MessageTypeNotSupported')).toBe('GenericError');
  });

  it('maps unknown codes to GenericError, including prototype property names', () => {
    for (const p of ['ocpp1.6', ...V2] as OcppProtocol[]) {
      for (const code of ['Bogus', '', 'genericerror', 'constructor', '__proto__', 'toString']) {
        expect(normalizeErrorCode(p, code)).toBe('GenericError');
      }
    }
  });
});

describe('isKnownErrorCode', () => {
  it('accepts a code only in its own version spelling', () => {
    expect(isKnownErrorCode('ocpp1.6', 'FormationViolation')).toBe(true);
    expect(isKnownErrorCode('ocpp1.6', 'FormatViolation')).toBe(false);
    expect(isKnownErrorCode('ocpp1.6', 'RpcFrameworkError')).toBe(false);
    expect(isKnownErrorCode('ocpp2.0.1', 'FormatViolation')).toBe(true);
    expect(isKnownErrorCode('ocpp2.0.1', 'FormationViolation')).toBe(false);
    expect(isKnownErrorCode('ocpp2.1', 'RpcFrameworkError')).toBe(true);
    expect(isKnownErrorCode('ocpp2.1', 'OccurenceConstraintViolation')).toBe(false);
  });

  it('rejects unknown codes', () => {
    expect(isKnownErrorCode('ocpp2.1', 'Bogus')).toBe(false);
    expect(isKnownErrorCode('ocpp1.6', 'constructor')).toBe(false);
  });
});
