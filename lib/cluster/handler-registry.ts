import { OcppRpcError } from '../protocol/errors.js';
import type { OcppProtocol } from '../protocol/protocol.js';

/** What an `@OcppHandler` method receives besides the payload. */
export interface OcppContext {
  identity: string;
  protocol: OcppProtocol;
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
}

/** action → handlers (at most one per protocol); fed at bootstrap by the Nest explorer. */
export class HandlerRegistry {
  private readonly byAction = new Map<string, Registration[]>();

  register(action: string, handler: OcppHandlerFn, protocols?: readonly OcppProtocol[]): void {
    const registrations = this.byAction.get(action) ?? [];
    const overlapping = registrations.find(
      (existing) =>
        existing.protocols === null ||
        !protocols ||
        protocols.some((protocol) => existing.protocols!.includes(protocol)),
    );
    if (overlapping) {
      throw new Error(
        `two @OcppHandler methods handle ${action}${protocols ? ` for ${protocols.join(', ')}` : ''}; give them distinct protocols`,
      );
    }
    registrations.push({ handler, protocols: protocols ? [...protocols] : null });
    this.byAction.set(action, registrations);
  }

  find(action: string, protocol: OcppProtocol): OcppHandlerFn | undefined {
    const registrations = this.byAction.get(action);
    if (!registrations) return undefined;
    for (const registration of registrations) {
      if (registration.protocols === null || registration.protocols.includes(protocol)) return registration.handler;
    }
    return undefined;
  }

  /** Runs the handler; no handler → NotImplemented. A void return is answered with `{}`. */
  async dispatch(payload: Record<string, unknown>, context: OcppContext): Promise<Record<string, unknown>> {
    const handler = this.find(context.action, context.protocol);
    if (!handler) throw new OcppRpcError('NotImplemented', `no handler for ${context.action}`);
    const reply = await handler(payload, context);
    return reply ?? {};
  }
}
