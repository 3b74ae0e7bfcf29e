import { directionOf, isCallToCharger, type ActionDirection } from './action-directions.js';
import { UnknownActionError } from './errors.js';
import type { OcppProtocol } from './protocol.js';

/**
 * What the CSMS is about to send: a CALL of the typed API, a SEND (2.1), or a raw CALL
 * (`sendRaw`: any action the protocol defines, whatever its direction).
 */
export type OutboundKind = 'call' | 'send' | 'raw';

/** The action is a vendor extension declared by the application (a custom validator). */
export type IsDeclaredAction = (protocol: OcppProtocol, action: string) => boolean;

function fits(kind: OutboundKind, direction: ActionDirection | undefined): boolean {
  if (kind === 'raw') return direction !== undefined;
  if (kind === 'send') return direction === 'send';
  return isCallToCharger(direction);
}

const REASON: Record<OutboundKind, string> = {
  call: 'is not a CALL the central system sends in',
  send: 'is not a SEND message in',
  raw: 'is not an action of',
};

/**
 * Why `action` must not go out, or null. With a protocol it must fit that protocol; without one
 * (the target's protocol is known only where its socket is) it must fit one of `configured`, and
 * the owner's session checks the target's own protocol before writing.
 */
export function outboundActionProblem(
  configured: readonly OcppProtocol[],
  protocol: OcppProtocol | undefined,
  action: string,
  kind: OutboundKind,
  isDeclared: IsDeclaredAction,
): UnknownActionError | null {
  const candidates = protocol === undefined ? configured : [protocol];
  if (protocol !== undefined && !configured.includes(protocol)) {
    return new UnknownActionError(action, [protocol], 'cannot be sent: that protocol is not configured');
  }
  const ok = candidates.some((candidate) => isDeclared(candidate, action) || fits(kind, directionOf(candidate, action)));
  return ok ? null : new UnknownActionError(action, candidates, REASON[kind]);
}
