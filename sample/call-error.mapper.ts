import { HttpException, HttpStatus } from '@nestjs/common';
import {
  ClusterUnavailableError,
  ConnectionClosedError,
  IncompatibleVersionError,
  InvalidOptionsError,
  LeaseLostError,
  NodeShuttingDownError,
  NotConnectedError,
  NotDeliveredError,
  OcppCallError,
  OcppTimeoutError,
  OcppValidationError,
  PayloadTooLargeError,
  ProtocolMismatchError,
  QueueFullError,
  UnknownActionError,
  UnsupportedByTransportError,
} from '../lib/index.js';

/** Maps the library's typed errors to the sample API's HTTP answers. */
export function httpErrorFor(error: unknown): HttpException {
  if (error instanceof NotConnectedError) {
    return new HttpException(
      { error: 'NotConnected', message: error.message, maybeDelivered: error.maybeDelivered },
      HttpStatus.NOT_FOUND,
    );
  }
  if (error instanceof NotDeliveredError) {
    // The delivery window ended with the charger offline; it was withdrawn and is never sent.
    return new HttpException({ error: 'NotDelivered', message: error.message, sent: false }, HttpStatus.NOT_FOUND);
  }
  if (error instanceof UnsupportedByTransportError) {
    return new HttpException({ error: 'NotImplemented', message: error.message, feature: error.feature }, HttpStatus.NOT_IMPLEMENTED);
  }
  if (error instanceof ConnectionClosedError) {
    return new HttpException({ error: 'NotConnected', message: error.message, maybeDelivered: error.sent }, HttpStatus.NOT_FOUND);
  }
  if (error instanceof OcppTimeoutError) {
    return new HttpException({ error: 'Timeout', message: error.message, sent: error.sent }, HttpStatus.GATEWAY_TIMEOUT);
  }
  if (error instanceof OcppCallError) {
    return new HttpException(
      {
        error: 'CallError',
        errorCode: error.errorCode,
        errorDescription: error.errorDescription,
        errorDetails: error.errorDetails,
      },
      HttpStatus.BAD_GATEWAY,
    );
  }
  if (error instanceof OcppValidationError) {
    // Our payload is the client's fault (400); an invalid reply from the charger is not (502).
    return new HttpException(
      {
        error: 'ValidationError',
        direction: error.direction,
        errorCode: error.errorCode,
        description: error.description,
        details: error.details,
      },
      error.direction === 'request' ? HttpStatus.BAD_REQUEST : HttpStatus.BAD_GATEWAY,
    );
  }
  if (error instanceof UnknownActionError) {
    return new HttpException({ error: 'UnknownAction', message: error.message, action: error.action }, HttpStatus.BAD_REQUEST);
  }
  if (error instanceof PayloadTooLargeError) {
    return new HttpException({ error: 'PayloadTooLarge', message: error.message, sent: false }, HttpStatus.PAYLOAD_TOO_LARGE);
  }
  if (error instanceof ProtocolMismatchError) {
    return new HttpException({ error: 'ProtocolMismatch', message: error.message, actual: error.actual }, HttpStatus.CONFLICT);
  }
  if (error instanceof QueueFullError) {
    return new HttpException({ error: 'QueueFull', message: error.message }, HttpStatus.TOO_MANY_REQUESTS);
  }
  if (error instanceof IncompatibleVersionError) {
    const { message, nodeId, receivedVersion, supportedVersion } = error;
    return new HttpException({ error: 'IncompatibleVersion', message, nodeId, receivedVersion, supportedVersion }, HttpStatus.SERVICE_UNAVAILABLE);
  }
  if (error instanceof NodeShuttingDownError) {
    // sent: the command may still reach the charge point before its deadline; only its answer is lost.
    return new HttpException({ error: 'Unavailable', message: error.message, sent: error.sent }, HttpStatus.SERVICE_UNAVAILABLE);
  }
  if (error instanceof ClusterUnavailableError || error instanceof LeaseLostError) {
    return new HttpException({ error: 'Unavailable', message: error.message }, HttpStatus.SERVICE_UNAVAILABLE);
  }
  if (error instanceof InvalidOptionsError) {
    return new HttpException({ error: 'BadRequest', message: error.message }, HttpStatus.BAD_REQUEST);
  }
  return new HttpException({ error: 'InternalError' }, HttpStatus.INTERNAL_SERVER_ERROR);
}
