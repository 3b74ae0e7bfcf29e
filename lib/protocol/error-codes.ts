import type { OcppProtocol } from './protocol.js';

/** OCPP-J 1.6 error codes, with the spellings of the 1.6 errata sheet (PROTOCOL.md, "Error codes"). */
export const OCPP16_ERROR_CODES = [
  'NotImplemented',
  'NotSupported',
  'InternalError',
  'ProtocolError',
  'SecurityError',
  'FormationViolation',
  'PropertyConstraintViolation',
  'OccurenceConstraintViolation',
  'TypeConstraintViolation',
  'GenericError',
] as const;

/** OCPP-J 2.0.1 and 2.1 error codes. */
export const OCPP2_ERROR_CODES = [
  'FormatViolation',
  'GenericError',
  'InternalError',
  'MessageTypeNotSupported',
  'NotImplemented',
  'NotSupported',
  'OccurrenceConstraintViolation',
  'PropertyConstraintViolation',
  'ProtocolError',
  'RpcFrameworkError',
  'SecurityError',
  'TypeConstraintViolation',
] as const;

export type Ocpp16ErrorCode = (typeof OCPP16_ERROR_CODES)[number];
export type Ocpp2ErrorCode = (typeof OCPP2_ERROR_CODES)[number];
export type OcppErrorCode = Ocpp16ErrorCode | Ocpp2ErrorCode;

/*
 * Maps are used (not object literals) so that input such as "constructor" or "__proto__"
 * cannot hit a prototype property.
 */
const TO_16: ReadonlyMap<string, Ocpp16ErrorCode> = new Map<string, Ocpp16ErrorCode>([
  ...OCPP16_ERROR_CODES.map((code) => [code, code] as const),
  ['FormatViolation', 'FormationViolation'],
  ['OccurrenceConstraintViolation', 'OccurenceConstraintViolation'],
  // 1.6 has no framework-level codes; GenericError is its catch-all.
  ['RpcFrameworkError', 'GenericError'],
  ['MessageTypeNotSupported', 'GenericError'],
]);

const TO_2: ReadonlyMap<string, Ocpp2ErrorCode> = new Map<string, Ocpp2ErrorCode>([
  ...OCPP2_ERROR_CODES.map((code) => [code, code] as const),
  ['FormationViolation', 'FormatViolation'],
  ['OccurenceConstraintViolation', 'OccurrenceConstraintViolation'],
]);

/** The error codes valid in `protocol`, in that version's spelling. */
export function errorCodesFor(protocol: OcppProtocol): readonly OcppErrorCode[] {
  return protocol === 'ocpp1.6' ? OCPP16_ERROR_CODES : OCPP2_ERROR_CODES;
}

/** True when `code` is valid, exactly as spelled, in `protocol`. */
export function isKnownErrorCode(protocol: OcppProtocol, code: string): code is OcppErrorCode {
  return (protocol === 'ocpp1.6' ? TO_16 : TO_2).get(code) === code;
}

/**
 * The spelling of `code` that `protocol` uses. Either version's spelling is accepted;
 * a code the version lacks, or an unknown code, becomes GenericError.
 */
export function normalizeErrorCode(protocol: OcppProtocol, code: string): OcppErrorCode {
  return (protocol === 'ocpp1.6' ? TO_16 : TO_2).get(code) ?? 'GenericError';
}
