/**
 * Typed errors. Callers branch on the class (or `code`), never on message text.
 */

export abstract class OcppClusterError extends Error {
  abstract readonly code: string;
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/**
 * Thrown by an `@OcppHandler` to answer the charger with a CALLERROR of this code.
 * The code may be given in either spelling; the session sends the negotiated version's one.
 */
export class OcppRpcError extends OcppClusterError {
  readonly code = 'OCPP_RPC_ERROR';
  constructor(
    readonly errorCode: string,
    readonly errorDescription = '',
    readonly errorDetails: Record<string, unknown> = {},
  ) {
    super(`${errorCode}${errorDescription ? `: ${errorDescription}` : ''}`);
  }
}

/** The charger answered our CALL with a CALLERROR. */
export class OcppCallError extends OcppClusterError {
  readonly code = 'OCPP_CALL_ERROR';
  constructor(
    readonly identity: string,
    readonly action: string,
    readonly errorCode: string,
    readonly errorDescription: string,
    readonly errorDetails: Record<string, unknown>,
  ) {
    super(`${identity} answered ${action} with ${errorCode}${errorDescription ? `: ${errorDescription}` : ''}`);
  }
}

/**
 * No node holds a live socket for this identity. `maybeDelivered` is true when the node that held
 * it died while handling the call: the charge point may have received it.
 */
export class NotConnectedError extends OcppClusterError {
  readonly code = 'OCPP_NOT_CONNECTED';
  constructor(
    readonly identity: string,
    detail?: string,
    readonly maybeDelivered = false,
  ) {
    super(`charge point ${JSON.stringify(identity)} is not connected${detail ? ` (${detail})` : ''}`);
  }
}

/**
 * The call did not complete before its timeout/deadline. If `sent` is false the charger
 * never received it; if true, the charger received it but did not answer in time.
 */
export class OcppTimeoutError extends OcppClusterError {
  readonly code = 'OCPP_TIMEOUT';
  constructor(
    readonly identity: string,
    readonly action: string,
    readonly timeoutMs: number,
    readonly sent: boolean,
  ) {
    super(`${action} to ${identity} timed out after ${timeoutMs} ms (${sent ? 'sent, no answer' : 'never sent'})`);
  }
}

/** A payload broke the schema (ours before sending, or the charger's reply). */
export class OcppValidationError extends OcppClusterError {
  readonly code = 'OCPP_VALIDATION';
  constructor(
    readonly action: string,
    readonly direction: 'request' | 'response',
    readonly errorCode: string,
    readonly description: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(`${action} ${direction} is invalid: ${description}`);
  }
}

/** The caller asked for a protocol the charger did not negotiate. */
export class ProtocolMismatchError extends OcppClusterError {
  readonly code = 'OCPP_PROTOCOL_MISMATCH';
  constructor(
    readonly identity: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`${identity} speaks ${actual}, not ${expected}`);
  }
}

/**
 * An action the protocol does not define (or not in that direction): refused before anything is
 * sent, and at boot for a handler. Vendor actions must be declared (a custom validator, or
 * `@OcppCustomHandler`).
 */
export class UnknownActionError extends OcppClusterError {
  readonly code = 'OCPP_UNKNOWN_ACTION';
  constructor(
    readonly action: string,
    readonly protocols: readonly string[],
    readonly reason: string,
  ) {
    super(`${JSON.stringify(action)} ${reason}${protocols.length > 0 ? ` (${protocols.join(', ')})` : ''}`);
  }
}

/** The per-charger outbound queue is full. */
export class QueueFullError extends OcppClusterError {
  readonly code = 'OCPP_QUEUE_FULL';
  constructor(readonly identity: string, readonly limit: number) {
    super(`outbound queue of ${identity} is full (${limit} calls)`);
  }
}

/**
 * The owning node's inbox already holds its cap (`streamMaxLen`) of commands not yet handled:
 * the command was refused before it was appended, so no charge point ever gets it (`sent` is
 * always false). Back off, or call again once the node has caught up.
 */
export class InboxFullError extends OcppClusterError {
  readonly code = 'OCPP_INBOX_FULL';
  readonly sent = false;
  constructor(
    readonly nodeId: string,
    readonly queued: number,
    readonly limit: number,
  ) {
    super(`inbox of node ${JSON.stringify(nodeId)} is full (${queued} of ${limit} commands waiting): command not sent`);
  }
}

/**
 * The frame would be larger than `maxPayload` bytes: it was refused before sending and never
 * reached the charge point (`sent` is always false). `bytes` is known on the node that refused it.
 */
export class PayloadTooLargeError extends OcppClusterError {
  readonly code = 'OCPP_PAYLOAD_TOO_LARGE';
  readonly sent = false;
  constructor(
    readonly identity: string,
    readonly action: string,
    readonly limit: number,
    readonly bytes?: number,
  ) {
    super(`${action} to ${identity} is ${bytes === undefined ? 'larger than' : `${bytes} bytes, over`} the ${limit}-byte maxPayload; not sent`);
  }
}

/** The socket closed while the call was queued or in flight. */
export class ConnectionClosedError extends OcppClusterError {
  readonly code = 'OCPP_CONNECTION_CLOSED';
  /** `sent`: the CALL had been written to the socket (the charger may have acted on it). */
  constructor(
    readonly identity: string,
    readonly closeCode?: number,
    readonly sent = false,
  ) {
    super(`connection of ${identity} closed${closeCode ? ` (${closeCode})` : ''}`);
  }
}

/** Options failed validation at start-up; `option` names the bad one. */
export class InvalidOptionsError extends OcppClusterError {
  readonly code = 'OCPP_INVALID_OPTIONS';
  constructor(readonly option: string, reason: string) {
    super(`invalid OcppCluster option "${option}": ${reason}`);
  }
}

/** Another live process holds this node id. */
export class NodeIdConflictError extends OcppClusterError {
  readonly code = 'OCPP_NODE_ID_CONFLICT';
  constructor(readonly nodeId: string) {
    super(`node id ${JSON.stringify(nodeId)} is held by another live process`);
  }
}

/** The cluster transport (e.g. Redis) could not carry the call. */
export class ClusterUnavailableError extends OcppClusterError {
  readonly code = 'OCPP_CLUSTER_UNAVAILABLE';
  constructor(reason: string) {
    super(`cluster transport unavailable: ${reason}`);
  }
}

/** A node's inbox or replies stream does not exist on the transport (the node left or was taken over): nothing was written. */
export class NodeLaneMissingError extends ClusterUnavailableError {
  constructor(
    readonly nodeId: string,
    readonly lane: 'inbox' | 'replies',
    transport: string,
  ) {
    super(`node ${JSON.stringify(nodeId)} has no ${lane} on ${transport} (it left or was taken over)`);
  }
}

/**
 * This node cannot prove it still holds its lease (its liveness key), so it wrote nothing:
 * a command read from the cluster transport is never sent once another node may have answered it.
 */
export class LeaseLostError extends OcppClusterError {
  readonly code = 'OCPP_LEASE_LOST';
  readonly sent = false;
  constructor(readonly nodeId: string) {
    super(`node ${JSON.stringify(nodeId)} cannot prove it still holds its lease; nothing was sent`);
  }
}

/** The node is draining or shutting down and takes no new work. */
export class NodeShuttingDownError extends OcppClusterError {
  readonly code = 'OCPP_SHUTTING_DOWN';
  /**
   * @param sent true when the command had already been handed to the owner's inbox: it may still
   *   reach the charge point before its deadline, but this node will not hear the answer.
   */
  constructor(readonly sent = false) {
    super(
      sent
        ? 'node is shutting down: the command was sent and may still reach the charge point before its deadline; its answer can no longer be received here'
        : 'node is shutting down',
    );
  }
}

/** The owning node failed the call for a reason that has no more specific type. */
export class RemoteCallFailedError extends OcppClusterError {
  readonly code = 'OCPP_REMOTE_FAILED';
  constructor(
    readonly identity: string,
    readonly action: string,
    readonly remoteCode: string,
    message: string,
  ) {
    super(`${action} to ${identity} failed on the owning node: ${message}`);
  }
}

/**
 * A node met a cluster envelope in a wire version it cannot read (a rolling upgrade across
 * library versions): the call was not run there. `nodeId` is the node that refused it.
 */
export class IncompatibleVersionError extends OcppClusterError {
  readonly code = 'OCPP_INCOMPATIBLE_VERSION';
  constructor(
    readonly nodeId: string,
    readonly receivedVersion: number,
    readonly supportedVersion: number,
  ) {
    super(`node ${nodeId} cannot read cluster wire version ${receivedVersion} (it reads up to ${supportedVersion}); the call was not run`);
  }
}

/**
 * `deliverWithinMs`: the charge point did not connect to any node before the delivery window
 * ended. The command was withdrawn from the cluster first, so no node ever sends it (`sent` is
 * always false). `reason` says when the caller's own node gave up early (it stopped).
 */
export class NotDeliveredError extends OcppClusterError {
  readonly code = 'OCPP_NOT_DELIVERED';
  readonly sent = false;
  constructor(
    readonly identity: string,
    readonly action: string,
    readonly deliverWithinMs: number,
    readonly reason = 'the charge point did not connect within the delivery window',
  ) {
    super(`${action} to ${identity} not delivered within ${deliverWithinMs} ms: ${reason}; it will never be sent`);
  }
}

/** The call asked for something the configured transport cannot do (e.g. `deliverWithinMs` without a parked-command store). */
export class UnsupportedByTransportError extends OcppClusterError {
  readonly code = 'OCPP_UNSUPPORTED_BY_TRANSPORT';
  constructor(
    readonly transport: string,
    readonly feature: string,
    hint: string,
  ) {
    super(`transport ${JSON.stringify(transport)} does not support ${feature}: ${hint}`);
  }
}
