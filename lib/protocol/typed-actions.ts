import type { OcppMessages } from '../generated/index.js';
import type { ActionDirection, ActionDirections } from './action-directions.js';
import type { OcppProtocol } from './protocol.js';

/**
 * Compile-time view of every OCPP action: its payloads come from types generated out of the
 * shipped OCA schemas (lib/generated, built by scripts/generate-ocpp-types.mjs), its direction
 * from the hand-kept table in action-directions.ts.
 */
export type { OcppMessages };

type Directed<D extends ActionDirection> = D extends 'toCsms' ? 'toCsms' | 'both' : D extends 'toCharger' ? 'toCharger' | 'both' : D;

/** Actions of protocol `P` sent in direction `D` (`both` counts either way). Distributes over a union of protocols. */
export type ActionsOf<P extends OcppProtocol, D extends ActionDirection> = P extends OcppProtocol
  ? { [A in keyof ActionDirections[P]]: ActionDirections[P][A] extends Directed<D> ? A : never }[keyof ActionDirections[P]] & string
  : never;

type ProtocolsLacking<P extends OcppProtocol, A extends string, D extends ActionDirection> = P extends OcppProtocol
  ? A extends ActionsOf<P, D>
    ? never
    : P
  : never;

/** Actions every protocol of the union `P` defines in direction `D`: what a version-less call may use. */
export type CommonActionsOf<P extends OcppProtocol, D extends ActionDirection> = {
  [A in ActionsOf<P, D>]: [ProtocolsLacking<P, A, D>] extends [never] ? A : never;
}[ActionsOf<P, D>];

/** A charge point may send it: CALLs to the CSMS, DataTransfer, and SEND messages. */
export type InboundActionsOf<P extends OcppProtocol> = ActionsOf<P, 'toCsms'> | ActionsOf<P, 'send'>;

type MessagePart<P extends OcppProtocol, A extends string, K extends 'req' | 'res'> = P extends OcppProtocol
  ? A extends keyof OcppMessages[P]
    ? OcppMessages[P][A] extends Record<K, infer T>
      ? T
      : never
    : never
  : never;

/** The request payload of `A` in `P`; for a union of protocols, the union of their requests. */
export type OcppRequest<P extends OcppProtocol, A extends string> = MessagePart<P, A, 'req'>;

/** The reply payload of `A` in `P` (`never` for a SEND); for a union of protocols, the union of their replies. */
export type OcppResponse<P extends OcppProtocol, A extends string> = MessagePart<P, A, 'res'>;

/** A payload that fits `A` in every protocol of `P` (the target may speak any of them). */
export type CommonRequest<P extends OcppProtocol, A extends string> = UnionToIntersection<OcppRequest<P, A>>;

/** What a handler serving every protocol of `P` must return: a reply valid in each of them. */
export type HandlerReply<P extends OcppProtocol, A extends string> = [OcppResponse<P, A>] extends [never]
  ? void
  : UnionToIntersection<OcppResponse<P, A>>;

export type UnionToIntersection<U> = (U extends unknown ? (x: U) => void : never) extends (x: infer I) => void ? I : never;
