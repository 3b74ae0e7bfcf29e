import { ProtocolMismatchError } from '../protocol/errors.js';
import type { OcppProtocol } from '../protocol/protocol.js';
import type { LocalConnection } from './local-registry.js';
import type { ClusterSpan } from './tracing.js';

/** Fencing for one call: checked right before its frame is written. */
export interface CallGate {
  mayWrite: () => boolean;
  refusal: () => Error;
}

/** A CALL on a socket of this node, settling with the charge point's answer. */
export function callLocal(
  connection: LocalConnection,
  protocol: OcppProtocol | undefined,
  action: string,
  payload: Record<string, unknown>,
  deadline: number,
  gate?: CallGate,
  parent?: ClusterSpan,
): Promise<Record<string, unknown>> {
  if (protocol && protocol !== connection.protocol) {
    return Promise.reject(new ProtocolMismatchError(connection.identity, protocol, connection.protocol));
  }
  // The deadline decides; timeoutMs only has to be a valid positive number.
  const call = connection.rpc.call(action, payload, { deadline, timeoutMs: Math.max(1, deadline - Date.now()), mayWrite: gate?.mayWrite, refusal: gate?.refusal });
  if (!parent) return call;
  const span = parent.child(`ocpp.charger.call ${action}`, 'client', { 'ocpp.identity': connection.identity, 'ocpp.protocol': connection.protocol });
  call.then(
    () => span.end(),
    (error) => span.end(error),
  );
  return call;
}
