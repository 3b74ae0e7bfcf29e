import { ClusterUnavailableError } from '../protocol/errors.js';
import type { Broadcasts } from './broadcasts.js';
import { errorMessage } from './call-router.js';
import type { CallRouter } from './call-router.js';
import type { ClusterMessage, CommandEnvelope, CommandOutcome, EvictEnvelope } from './envelope.js';
import { repliesOf } from './address.js';
import type { DeliveryInfo, EventAdapterInterface } from './event-adapter.interface.js';
import type { LeaseGuard } from './lease-guard.js';
import { callLocal } from './local-call.js';
import type { ClusterLogger } from './logger.js';
import type { NodeMetrics } from './node-metrics.js';
import { outcomeFromError } from './outcome.js';
import type { OwnerCache } from './owner-cache.js';
import { REPLY_GRACE_MS } from './remote-calls.js';
import type { RemoteCalls } from './remote-calls.js';
import { sleep as delay } from './time-bounds.js';

export interface CommandInboxDeps {
  nodeId: string;
  adapter: EventAdapterInterface;
  lease: LeaseGuard;
  router: CallRouter;
  owners: OwnerCache;
  remoteCalls: RemoteCalls;
  broadcasts: Broadcasts;
  metrics: NodeMetrics;
  logger: ClusterLogger;
  onEvict: (message: EvictEnvelope) => Promise<void>;
  /** Another node announced it left: whatever it left behind can be cleared now. */
  onNodeLeft: (nodeId: string) => void;
  /** True once the node left the cluster: replies are not retried any more. */
  hasLeft: () => boolean;
}

const LEASE_LOST_CODE = 'OCPP_LEASE_LOST';

/**
 * This node's inbox, as the transport delivers it: commands for our sockets (served under the
 * lease guard and answered to their caller), replies to our own calls and broadcasts,
 * broadcasts, evictions, and nodes leaving.
 */
export class CommandInbox {
  /** Inbox commands being served (drain waits for them). */
  private active = 0;

  constructor(private readonly deps: CommandInboxDeps) {}

  get activeCommands(): number {
    return this.active;
  }

  onMessage(message: ClusterMessage, delivery?: DeliveryInfo): void | Promise<void> {
    const { owners, remoteCalls, broadcasts } = this.deps;
    switch (message.kind) {
      case 'command':
        return delivery?.redelivered ? this.onRedeliveredCommand(message) : this.onCommand(message);
      case 'reply':
        this.deps.metrics.counters.remoteReceived++;
        if (message.outcome.status === 'notConnected') owners.forget(message.identity);
        else owners.answeredBy(message.identity, message.from);
        if (!remoteCalls.settle(message.id, message.outcome)) broadcasts.onReply(message.id, message.from, message.outcome);
        return;
      case 'broadcast':
        return broadcasts.deliver(message);
      case 'evict':
        return this.deps.onEvict(message);
      case 'nodeLeft':
        owners.forgetNode(message.nodeId);
        if (message.nodeId !== this.deps.nodeId) this.deps.onNodeLeft(message.nodeId);
        return;
    }
  }

  /**
   * A command for one of our sockets. The call is queued synchronously (before any await),
   * so commands read in stream order reach the charge point's FIFO in that order.
   */
  private onCommand(command: CommandEnvelope): Promise<void> {
    const { lease } = this.deps;
    this.active++;
    const incarnation = lease.incarnation;
    const outcome = this.runCommand(command, incarnation);
    return outcome
      .then((result) => (result?.status === 'failed' && result.errorCode === LEASE_LOST_CODE ? this.afterSuspension() : result))
      .then((result) => (result && lease.mayAnswer(incarnation) ? this.reply(command, result) : undefined))
      .finally(() => {
        this.active--;
      });
  }

  /**
   * A command an earlier process of this node had read (it crashed, restarted or was taken
   * over): it may have reached the charge point, so it is answered as such and never sent again.
   */
  private onRedeliveredCommand(command: CommandEnvelope): Promise<void> {
    return this.reply(command, {
      status: 'notConnected',
      reason: `node ${this.deps.nodeId} restarted while handling the command`,
      maybeDelivered: true,
    });
  }

  /** The command's outcome; null when it went on to another node, which answers the caller itself. */
  private runCommand(command: CommandEnvelope, incarnation: number): Promise<CommandOutcome | null> {
    const { lease, router } = this.deps;
    if (Date.now() >= command.deadline) return Promise.resolve({ status: 'timeout', sent: false });
    const connection = router.servingConnection(command.identity);
    // Writing a command read in `incarnation` to a socket is allowed only while the lease is proven.
    const gate = lease.gateFor(incarnation);
    if (!connection) return router.forward(command, gate);
    if (command.fireAndForget) {
      if (!lease.mayWrite(incarnation)) return Promise.resolve(outcomeFromError(lease.refusal()));
      try {
        connection.rpc.sendMessage(command.action, command.payload);
        return Promise.resolve({ status: 'result', payload: {} });
      } catch (error) {
        return Promise.resolve(outcomeFromError(error));
      }
    }
    return callLocal(connection, command.protocol, command.action, command.payload, command.deadline, gate).then(
      (payload): CommandOutcome => ({ status: 'result', payload }),
      (error): CommandOutcome => outcomeFromError(error),
    );
  }

  /**
   * A command refused because the lease could not be proven. Taken back with nobody having
   * taken the node over: tell the caller it was not sent. Taken over: the survivor answered it.
   */
  private async afterSuspension(): Promise<CommandOutcome | null> {
    const end = await this.deps.lease.suspensionEnd();
    if (end === 'fenced') return null;
    return {
      status: 'failed',
      errorCode: new ClusterUnavailableError('').code,
      message: `not sent: node ${this.deps.nodeId} could not prove its lease (Redis stalled or unreachable)`,
    };
  }

  /** Sends the outcome to the caller, retrying (a Redis blip must not turn an answer into a timeout). */
  private async reply(command: CommandEnvelope, outcome: CommandOutcome): Promise<void> {
    const { nodeId, adapter, logger } = this.deps;
    const envelope = { kind: 'reply', id: command.id, from: nodeId, identity: command.identity, outcome } as const;
    const giveUpAt = command.deadline + REPLY_GRACE_MS;
    for (let backoffMs = 50; ; backoffMs = Math.min(backoffMs * 2, 1_000)) {
      try {
        await adapter.publish(repliesOf(command.origin), envelope);
        return;
      } catch (error) {
        if (Date.now() + backoffMs >= giveUpAt || this.deps.hasLeft()) {
          logger.warn(`reply to ${command.origin} for ${command.action} on ${command.identity} lost: ${errorMessage(error)}`);
          return;
        }
        await delay(backoffMs);
      }
    }
  }
}
