import { validateIdentity } from '../protocol/identity.js';
import { InvalidOptionsError, NotConnectedError, OcppValidationError } from '../protocol/errors.js';
import { callTimeoutProblem } from '../protocol/call-timeout.js';
import { payloadEncodingProblem } from '../protocol/payload-depth.js';
import type { OcppProtocol } from '../protocol/protocol.js';
import type { SchemaValidator } from '../protocol/validator.js';
import type { SendOptions } from './node-types.js';

/** The caller's input, checked on the caller's node before any I/O: bad input is the caller's error, never a transport failure later. */
export class CallChecks {
  constructor(
    private readonly options: { callTimeoutMs: number; maxIdentityLength: number },
    private readonly validator: SchemaValidator | null,
  ) {}

  timeoutOf(options: SendOptions): number {
    const timeoutMs = options.timeoutMs ?? this.options.callTimeoutMs;
    const problem = callTimeoutProblem(timeoutMs);
    if (problem !== null) throw new InvalidOptionsError('timeoutMs', problem);
    return timeoutMs;
  }

  /** Identities that can never be connected (they would not pass the gateway) fail before any I/O. */
  requireValidIdentity(identity: string): void {
    if (!this.isPossibleIdentity(identity)) throw invalidIdentityError(identity);
  }

  isPossibleIdentity(identity: string): boolean {
    return typeof identity === 'string' && validateIdentity(identity, { maxLength: this.options.maxIdentityLength }) === null;
  }

  /** A payload JSON cannot carry is the caller's error, found before any I/O (not a transport failure later). */
  requireEncodable(action: string, payload: Record<string, unknown>): void {
    const problem = payloadEncodingProblem(payload);
    if (problem !== null) throw new OcppValidationError(action, 'request', 'FormatViolation', problem);
  }

  /** Fails fast on the caller's node, before anything crosses the network. */
  validateRequest(protocol: OcppProtocol | undefined, action: string, payload: Record<string, unknown>): void {
    const error = this.requestValidationError(protocol, action, payload);
    if (error) throw error;
  }

  requestValidationError(protocol: OcppProtocol | undefined, action: string, payload: Record<string, unknown>): OcppValidationError | null {
    const problem = this.validator && protocol ? this.validator.validate(protocol, action, 'request', payload) : null;
    return problem ? new OcppValidationError(action, 'request', problem.errorCode, problem.description, problem.details) : null;
  }
}

export const invalidIdentityError = (identity: unknown): NotConnectedError => new NotConnectedError(String(identity), 'not a valid charge point identity');
