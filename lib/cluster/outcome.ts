import {
  ClusterUnavailableError,
  ConnectionClosedError,
  InboxFullError,
  IncompatibleVersionError,
  NotConnectedError,
  OcppCallError,
  OcppClusterError,
  OcppTimeoutError,
  OcppValidationError,
  PayloadTooLargeError,
  ProtocolMismatchError,
  QueueFullError,
  RemoteCallFailedError,
  UnknownActionError,
} from '../protocol/errors.js';

import type { CommandOutcome } from './envelope.js';

const QUEUE_FULL_CODE = new QueueFullError('', 0).code;
const UNAVAILABLE_CODE = new ClusterUnavailableError('').code;
const INBOX_FULL_CODE = new InboxFullError('', 0, 0).code;
const PAYLOAD_TOO_LARGE_CODE = new PayloadTooLargeError('', '', 0).code;
const UNKNOWN_ACTION_CODE = new UnknownActionError('', [], '').code;
const INCOMPATIBLE_VERSION_CODE = new IncompatibleVersionError('', 0, 0).code;

/** Turns what a local call produced into something that can cross to another node. */
export function outcomeFromError(error: unknown): CommandOutcome {
  if (error instanceof OcppCallError) {
    return {
      status: 'callError',
      errorCode: error.errorCode,
      errorDescription: error.errorDescription,
      errorDetails: error.errorDetails,
    };
  }
  if (error instanceof OcppTimeoutError) return { status: 'timeout', sent: error.sent };
  if (error instanceof NotConnectedError) return { status: 'notConnected' };
  if (error instanceof ConnectionClosedError) {
    // A CALL already written may have been acted on before the socket went: never say "not delivered" then.
    return error.sent ? { status: 'notConnected', reason: 'connection closed', maybeDelivered: true } : { status: 'notConnected', reason: 'connection closed' };
  }
  if (error instanceof OcppValidationError) {
    return {
      status: 'validation',
      direction: error.direction,
      errorCode: error.errorCode,
      description: error.description,
      details: error.details,
    };
  }
  if (error instanceof ProtocolMismatchError) return { status: 'protocolMismatch', actual: error.actual };
  if (error instanceof QueueFullError || error instanceof PayloadTooLargeError) {
    return { status: 'failed', errorCode: error.code, message: error.message, limit: error.limit };
  }
  if (error instanceof InboxFullError) {
    return { status: 'failed', errorCode: error.code, message: error.message, limit: error.limit, nodeId: error.nodeId, queued: error.queued };
  }
  if (error instanceof IncompatibleVersionError) {
    const { code: errorCode, message, nodeId, receivedVersion, supportedVersion } = error;
    return { status: 'failed', errorCode, message, nodeId, receivedVersion, supportedVersion };
  }
  if (error instanceof OcppClusterError) return { status: 'failed', errorCode: error.code, message: error.message };
  return { status: 'failed', errorCode: 'INTERNAL', message: 'internal error on the owning node' };
}

/** Rebuilds, on the caller's node, the typed error (or result) that an outcome stands for. */
export function settleOutcome(
  outcome: CommandOutcome,
  call: { identity: string; action: string; timeoutMs: number; expectedProtocol?: string },
): Record<string, unknown> {
  switch (outcome.status) {
    case 'result':
      return outcome.payload;
    case 'callError':
      throw new OcppCallError(call.identity, call.action, outcome.errorCode, outcome.errorDescription, outcome.errorDetails);
    case 'timeout':
      throw new OcppTimeoutError(call.identity, call.action, call.timeoutMs, outcome.sent);
    case 'notConnected':
      throw new NotConnectedError(call.identity, outcome.reason, outcome.maybeDelivered ?? false);
    case 'validation':
      throw new OcppValidationError(call.action, outcome.direction, outcome.errorCode, outcome.description, outcome.details);
    case 'protocolMismatch':
      throw new ProtocolMismatchError(call.identity, call.expectedProtocol ?? 'unknown', outcome.actual);
    case 'failed':
      if (outcome.errorCode === QUEUE_FULL_CODE) throw new QueueFullError(call.identity, outcome.limit ?? 0);
      // The owner could not tell (or reach) the truth: as unavailable as if Redis were down here.
      if (outcome.errorCode === UNAVAILABLE_CODE) throw new ClusterUnavailableError(outcome.message);
      if (outcome.errorCode === INBOX_FULL_CODE) {
        throw new InboxFullError(outcome.nodeId ?? '', outcome.queued ?? outcome.limit ?? 0, outcome.limit ?? 0);
      }
      if (outcome.errorCode === PAYLOAD_TOO_LARGE_CODE) throw new PayloadTooLargeError(call.identity, call.action, outcome.limit ?? 0);
      if (outcome.errorCode === INCOMPATIBLE_VERSION_CODE) {
        throw new IncompatibleVersionError(outcome.nodeId ?? '', outcome.receivedVersion ?? 0, outcome.supportedVersion ?? 0);
      }
      if (outcome.errorCode === UNKNOWN_ACTION_CODE) throw new UnknownActionError(call.action, [], "is not an action of the charger's protocol");
      throw new RemoteCallFailedError(call.identity, call.action, outcome.errorCode, outcome.message);
  }
}
