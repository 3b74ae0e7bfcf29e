import { SetMetadata } from '@nestjs/common';
import { OCPP_CONNECTION_EVENT_METADATA, OCPP_HANDLER_METADATA } from '../ocpp-cluster.constants.js';
import type { OcppProtocol } from '../protocol/protocol.js';

export interface OcppHandlerMetadata {
  action: string;
  protocols?: OcppProtocol[];
}

/**
 * Marks a provider method as the handler of an inbound OCPP action. The method gets
 * `(payload, context: OcppContext)`; its return value is the CALLRESULT payload; a thrown
 * `OcppRpcError` becomes a CALLERROR with its code.
 */
export function OcppHandler(action: string, options: { protocols?: OcppProtocol[] } = {}): MethodDecorator {
  return SetMetadata<string, OcppHandlerMetadata>(OCPP_HANDLER_METADATA, { action, protocols: options.protocols });
}

export type ConnectionEvent = 'connected' | 'disconnected';

/** Called with `(charger: ChargerInfo, session)` when a charge point connects to this node. */
export function OnChargerConnected(): MethodDecorator {
  return SetMetadata<string, ConnectionEvent>(OCPP_CONNECTION_EVENT_METADATA, 'connected');
}

/** Called with `(charger: ChargerInfo & { code, reason }, session)` when its socket on this node closes. */
export function OnChargerDisconnected(): MethodDecorator {
  return SetMetadata<string, ConnectionEvent>(OCPP_CONNECTION_EVENT_METADATA, 'disconnected');
}
