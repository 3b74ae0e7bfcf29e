import { SetMetadata } from '@nestjs/common';
import { OCPP_CONNECTION_EVENT_METADATA, OCPP_HANDLER_METADATA } from './ocpp-cluster.constants.js';
import type { OcppContext } from '../cluster/handler-registry.js';
import type { OcppProtocol } from '../protocol/protocol.js';
import type { CommonActionsOf, HandlerReply, OcppRequest } from '../protocol/typed-actions.js';

export interface OcppHandlerMetadata {
  action: string;
  protocols?: OcppProtocol[];
  /** A vendor action no protocol defines (`@OcppCustomHandler`). */
  custom?: boolean;
}

/** Actions a charge point sends (CALL or SEND) in every protocol of `P`. */
export type HandlerActionsOf<P extends OcppProtocol> = CommonActionsOf<P, 'toCsms'> | CommonActionsOf<P, 'send'>;

/** The method a handler of `A` for the protocols `P` must be: a reply valid in every one of them. */
export type OcppHandlerMethod<P extends OcppProtocol, A extends string> = (
  payload: OcppRequest<P, A>,
  context: OcppContext<P>,
) => HandlerReply<P, A> | Promise<HandlerReply<P, A>>;

/** A method decorator whose method type must fit the action (checked by the compiler). */
export type TypedMethodDecorator<P extends OcppProtocol, A extends string> = <T extends OcppHandlerMethod<P, A>>(
  target: object,
  propertyKey: string | symbol,
  descriptor: TypedPropertyDescriptor<T>,
) => void;

/**
 * Marks a provider method as the handler of an inbound OCPP action. The method gets
 * `(payload, context: OcppContext)`; its return value is the CALLRESULT payload; a thrown
 * `OcppRpcError` becomes a CALLERROR with its code.
 *
 * Without `protocols` it serves every protocol, so the action must exist in all of them and the
 * reply must fit each. Annotate the method's return type (e.g. `OcppResponse<'ocpp1.6', 'Authorize'>`):
 * an object literal's strings otherwise widen and no longer match the reply's enums.
 */
export function OcppHandler<const A extends HandlerActionsOf<OcppProtocol>>(action: A): TypedMethodDecorator<OcppProtocol, A>;
export function OcppHandler<const P extends OcppProtocol, const A extends HandlerActionsOf<P>>(
  action: A,
  options: { protocols: readonly P[] },
): TypedMethodDecorator<P, A>;
export function OcppHandler(action: string, options: { protocols?: readonly OcppProtocol[] } = {}): MethodDecorator {
  const protocols = options.protocols ? [...options.protocols] : undefined;
  return SetMetadata<string, OcppHandlerMetadata>(OCPP_HANDLER_METADATA, { action, protocols });
}

/**
 * The handler of a vendor action that no OCPP version defines (its payload is untyped). Without
 * this (or a custom validator for the action) a handler for an unknown action fails the boot.
 */
export function OcppCustomHandler(action: string, options: { protocols?: readonly OcppProtocol[] } = {}): MethodDecorator {
  const protocols = options.protocols ? [...options.protocols] : undefined;
  return SetMetadata<string, OcppHandlerMetadata>(OCPP_HANDLER_METADATA, { action, protocols, custom: true });
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
