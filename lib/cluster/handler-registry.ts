import { directionOf, isInbound } from '../protocol/action-directions.js';
import { OcppClusterError, OcppRpcError, UnknownActionError } from '../protocol/errors.js';
import type { IsDeclaredAction } from '../protocol/outbound-actions.js';
import type { OcppProtocol } from '../protocol/protocol.js';

/** What an `@OcppHandler` method receives besides the payload; `P`: the protocols it serves. */
export interface OcppContext<P extends OcppProtocol = OcppProtocol> {
  identity: string;
  protocol: P;
  action: string;
  messageId: string;
  /** Whatever the authenticate hook attached to this connection. */
  session: unknown;
  nodeId: string;
  remoteAddress?: string;
}

export type OcppHandlerFn = (
  payload: Record<string, unknown>,
  context: OcppContext,
) => Record<string, unknown> | Promise<Record<string, unknown>> | void | Promise<void>;

interface Registration {
  handler: OcppHandlerFn;
  protocols: readonly OcppProtocol[] | null;
  /** Declared a vendor action (`@OcppCustomHandler`): no protocol needs to define it. */
  custom: boolean;
}

/** Two handlers claim the same action for the same protocol. */
export class DuplicateHandlerError extends OcppClusterError {
  readonly code = 'OCPP_DUPLICATE_HANDLER';
  constructor(readonly action: string, protocols?: readonly string[]) {
    super(`two @OcppHandler methods handle ${action}${protocols ? ` for ${protocols.join(', ')}` : ''}; give them distinct protocols`);
  }
}

/** action → handlers (at most one per protocol); fed at bootstrap by the Nest explorer. */
export class HandlerRegistry {
  private readonly byAction = new Map<string, Registration[]>();

  /**
   * `isKnownAction` tells a recognised action (answered NotSupported when no handler takes it)
   * from an unknown one (NotImplemented), as OCPP-J asks.
   */
  constructor(private readonly isKnownAction: (protocol: OcppProtocol, action: string) => boolean = () => false) {}

  /** Every action some handler takes (for metric labels). */
  hasAnyHandler(action: string): boolean {
    return this.byAction.has(action);
  }

  register(action: string, handler: OcppHandlerFn, protocols?: readonly OcppProtocol[], custom = false): void {
    const registrations = this.byAction.get(action) ?? [];
    const overlapping = registrations.find(
      (existing) =>
        existing.protocols === null ||
        !protocols ||
        protocols.some((protocol) => existing.protocols!.includes(protocol)),
    );
    if (overlapping) throw new DuplicateHandlerError(action, protocols);
    registrations.push({ handler, protocols: protocols ? [...protocols] : null, custom });
    this.byAction.set(action, registrations);
  }

  /**
   * Fails the boot on a handler no charge point could ever call: its action is not one a charge
   * point sends in any of the protocols it names (or, naming none, in any configured protocol),
   * unless it is declared custom (the decorator, or a custom validator for it).
   */
  requireKnownActions(configured: readonly OcppProtocol[], isDeclared: IsDeclaredAction): void {
    for (const [action, registrations] of this.byAction) {
      for (const { protocols, custom } of registrations) {
        if (custom) continue;
        const served = protocols ?? configured;
        const defines = (protocol: OcppProtocol) => isDeclared(protocol, action) || isInbound(directionOf(protocol, action));
        const ok = protocols ? protocols.every(defines) : served.some(defines);
        if (!ok) {
          throw new UnknownActionError(action, served, `has an @OcppHandler but is not an action a charge point sends in ${protocols ? 'each of' : 'any of'}`);
        }
      }
    }
  }

  find(action: string, protocol: OcppProtocol): OcppHandlerFn | undefined {
    const registrations = this.byAction.get(action);
    if (!registrations) return undefined;
    for (const registration of registrations) {
      if (registration.protocols === null || registration.protocols.includes(protocol)) return registration.handler;
    }
    return undefined;
  }

  /**
   * Runs the handler. No handler: NotSupported for an action the protocol defines, NotImplemented
   * for one it does not. A void return is answered with `{}`.
   */
  async dispatch(payload: Record<string, unknown>, context: OcppContext): Promise<Record<string, unknown>> {
    const handler = this.find(context.action, context.protocol);
    if (!handler) {
      if (this.isKnownAction(context.protocol, context.action)) {
        throw new OcppRpcError('NotSupported', `${context.action} is not supported by this central system`);
      }
      throw new OcppRpcError('NotImplemented', `unknown action ${context.action}`);
    }
    const reply = await handler(payload, context);
    return reply ?? {};
  }
}
