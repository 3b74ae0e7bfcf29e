import { randomUUID } from 'node:crypto';
import { callTimeoutProblem } from '../protocol/call-timeout.js';
import { InvalidOptionsError, NotDeliveredError, UnsupportedByTransportError } from '../protocol/errors.js';
import { asClusterError, errorMessage } from './call-router.js';
import type { RouteRequest } from './call-router.js';
import type { CommandEnvelope } from './envelope.js';
import { inboxOf } from './address.js';
import type { EventAdapterInterface } from './event-adapter.interface.js';
import type { ClusterLogger } from './logger.js';
import type { SendOptions } from './node-types.js';
import type { ParkedCommandStore } from './parked-command.js';
import type { RemoteCalls } from './remote-calls.js';
import { sleep } from './time-bounds.js';

/** A call's delivery window (`deliverWithinMs`), fixed when the call starts. */
export interface DeliveryWindow {
  deliverWithinMs: number;
  /** Epoch ms: the end of the window. */
  deliverBy: number;
}

export interface ParkedCallsDeps {
  nodeId: string;
  adapter: EventAdapterInterface;
  remoteCalls: RemoteCalls;
  logger: ClusterLogger;
  /** This node holds the charge point: deliver what is parked for it. */
  deliverHere: (identity: string) => void;
}

interface WaitingCall {
  identity: string;
  action: string;
  deliverWithinMs: number;
  deadline: number;
}

/** Only sendToClient / sendRaw wait for an offline charge point; elsewhere the option is a mistake, never ignored. */
export function refuseDeliveryWindow(options: SendOptions | undefined, what: string): void {
  if (options?.deliverWithinMs !== undefined) throw new InvalidOptionsError('deliverWithinMs', `${what} does not take it (only sendToClient and sendRaw do)`);
}

/**
 * The caller side of `deliverWithinMs`: a call whose charge point is offline is parked in the
 * transport (cluster-wide, outliving this node) and waits for the node it connects to. At the
 * window's end the caller withdraws it: withdrawn means no node took it and none ever will
 * (NotDeliveredError); not found means a node took it for delivery, whose answer settles the call.
 */
export class ParkedCalls {
  private readonly waiting = new Map<string, WaitingCall>();

  constructor(private readonly deps: ParkedCallsDeps) {}

  get size(): number {
    return this.waiting.size;
  }

  /** The call's window, or null without `deliverWithinMs`; a bad value or a transport without parking is refused before any I/O. */
  windowOf(options: SendOptions): DeliveryWindow | null {
    const deliverWithinMs = options.deliverWithinMs;
    if (deliverWithinMs === undefined) return null;
    const problem = callTimeoutProblem(deliverWithinMs);
    if (problem !== null) throw new InvalidOptionsError('deliverWithinMs', problem);
    this.store();
    return { deliverWithinMs, deliverBy: Date.now() + deliverWithinMs };
  }

  /** Parks the call for `identity` and settles with the charge point's answer, or NotDeliveredError at the window's end. */
  async park(identity: string, request: RouteRequest, timeoutMs: number, window: DeliveryWindow): Promise<Record<string, unknown>> {
    const { nodeId, remoteCalls } = this.deps;
    const { protocol, action, payload } = request;
    const deadline = window.deliverBy + timeoutMs;
    const hop = request.span?.child('ocpp.cluster.park', 'producer', { 'ocpp.deliver_by': new Date(window.deliverBy).toISOString() });
    const parked = { deliverBy: window.deliverBy, timeoutMs };
    const command: CommandEnvelope = { kind: 'command', id: randomUUID(), origin: nodeId, identity, action, payload, protocol, deadline, parked, trace: hop?.carrier() };
    const reply = remoteCalls.wait(command.id, { identity, action, timeoutMs, deadline, expectedProtocol: protocol });
    reply.catch(() => undefined);
    try {
      await this.store().park(identity, { command, deliverBy: window.deliverBy, timeoutMs });
      hop?.end();
    } catch (error) {
      hop?.end(error);
      remoteCalls.fail(command.id, asClusterError(error));
      return reply;
    }
    this.waiting.set(command.id, { identity, action, deliverWithinMs: window.deliverWithinMs, deadline });
    const timer = setTimeout(() => void this.withdraw(command.id), Math.max(0, window.deliverBy - Date.now()));
    const done = (): void => {
      clearTimeout(timer);
      this.waiting.delete(command.id);
    };
    reply.then(done, done);
    // It may have connected while we parked: its node's own drain ran before our entry existed.
    void this.nudgeOwner(identity);
    return reply;
  }

  /**
   * The node stops: every call of ours still parked is withdrawn and answered NotDelivered (it is
   * never sent); one already taken for delivery keeps waiting for its answer.
   */
  withdrawAll(reason: string): Promise<void> {
    return Promise.all([...this.waiting.keys()].map((id) => this.withdraw(id, reason))).then(() => undefined);
  }

  private async withdraw(id: string, reason?: string): Promise<void> {
    for (let backoffMs = 50; ; backoffMs = Math.min(backoffMs * 2, 1_000)) {
      const call = this.waiting.get(id);
      if (!call) return;
      try {
        const withdrawn = await this.store().withdraw(call.identity, id);
        if (withdrawn) this.deps.remoteCalls.fail(id, new NotDeliveredError(call.identity, call.action, call.deliverWithinMs, reason));
        return;
      } catch (error) {
        // Unknown whether a node took it: the call ends at its deadline as "timed out, maybe sent".
        if (Date.now() + backoffMs >= call.deadline) {
          this.deps.logger.warn(`withdrawing a parked ${call.action} for ${call.identity} failed: ${errorMessage(error)}`);
          return;
        }
        await sleep(backoffMs);
      }
    }
  }

  private async nudgeOwner(identity: string): Promise<void> {
    const { adapter, nodeId } = this.deps;
    try {
      const owner = await adapter.getPresence(identity);
      if (!owner) return;
      if (owner.nodeId === nodeId) this.deps.deliverHere(identity);
      else await adapter.publish(inboxOf(owner.nodeId), { kind: 'deliverParked', identity });
    } catch (error) {
      // Its next connection delivers it; only the moment of this one is missed.
      this.deps.logger.warn(`telling the owner of ${identity} about a parked command failed: ${errorMessage(error)}`);
    }
  }

  private store(): ParkedCommandStore {
    const store = this.deps.adapter.parkedCommands;
    if (!store) {
      throw new UnsupportedByTransportError(
        this.deps.adapter.name,
        'deliverWithinMs',
        'it has no parked-command store (parkedCommands); the Redis and in-memory transports have one',
      );
    }
    return store;
  }
}
