import { ClusterUnavailableError, IncompatibleVersionError } from '../protocol/errors.js';
import type { Broadcasts } from './broadcasts.js';
import { errorMessage } from './call-router.js';
import type { CallRouter } from './call-router.js';
import type { ClusterMessage, CommandEnvelope, CommandOutcome, EvictEnvelope, ReplyEnvelope } from './envelope.js';
import { answerVersion, OLDEST_READABLE_WIRE_VERSION, wireVersionOf } from './envelope.js';
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
import { RecentCommands } from './recent-commands.js';
import { clusterTracer } from './tracing.js';
import type { ClusterSpan } from './tracing.js';

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
  /** A caller parked a command for one of our charge points (`deliverWithinMs`). */
  onDeliverParked: (identity: string) => void;
  /** Another node announced it left: whatever it left behind can be cleared now. */
  onNodeLeft: (nodeId: string) => void;
  /** True once the node left the cluster: replies are not retried any more. */
  hasLeft: () => boolean;
  /** The newest envelope version this node reads (and the one it writes). */
  wireVersion: number;
}

/** What an answer needs from what it answers (a command, or a broadcast: no identity). */
type ReplyTarget = Pick<CommandEnvelope, 'id' | 'origin' | 'deadline' | 'v' | 'reads'> & { identity?: string };

const LEASE_LOST_CODE = 'OCPP_LEASE_LOST';

/**
 * This node's inbox, as the transport delivers it: commands for our sockets (served under the
 * lease guard and answered to their caller), replies to our own calls and broadcasts,
 * broadcasts, evictions, and nodes leaving.
 */
export class CommandInbox {
  /** Inbox commands being served (drain waits for them). */
  private active = 0;
  private readonly recent = new RecentCommands();

  constructor(private readonly deps: CommandInboxDeps) {}

  get activeCommands(): number {
    return this.active;
  }

  onMessage(message: ClusterMessage, delivery?: DeliveryInfo): void | Promise<void> {
    const { owners, remoteCalls, broadcasts } = this.deps;
    const version = wireVersionOf(message);
    if (version > this.deps.wireVersion || version < OLDEST_READABLE_WIRE_VERSION) return this.onUnreadable(message, version);
    switch (message.kind) {
      case 'command':
        // A copy of a delivery taken before: the first one answers its caller.
        if (!this.recent.takeFirst(message)) return;
        return delivery?.redelivered ? this.onRedeliveredCommand(message) : this.onCommand(message);
      case 'reply':
        this.deps.metrics.counters.remoteReceived++;
        // The hop back, as a span of the caller's trace (the owner put its context in the reply).
        if (message.trace) clusterTracer.start('ocpp.cluster.reply.receive', 'consumer', { 'ocpp.from_node': message.from }, message.trace).end();
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
      case 'deliverParked':
        this.deps.onDeliverParked(message.identity);
        return;
    }
  }

  /**
   * An envelope in a wire version we cannot read: only its frame (kind, id, origin, identity) is
   * trusted. A command or broadcast is answered with IncompatibleVersionError, a reply settles its
   * call with it; an eviction or a departure has nobody to answer, so it is logged.
   */
  private onUnreadable(message: ClusterMessage, version: number): void | Promise<void> {
    const { nodeId, wireVersion, logger } = this.deps;
    const error = new IncompatibleVersionError(nodeId, version, wireVersion);
    switch (message.kind) {
      case 'command':
      case 'broadcast':
        logger.warn(`${message.kind} ${message.id} from ${message.origin} refused: ${error.message}`);
        return this.reply(message, outcomeFromError(error));
      case 'reply': {
        const refused = outcomeFromError(new IncompatibleVersionError(message.from, version, wireVersion));
        if (!this.deps.remoteCalls.settle(message.id, refused)) this.deps.broadcasts.onReply(message.id, message.from, refused);
        return;
      }
      default:
        logger.warn(`${String((message as { kind?: unknown }).kind)} envelope ignored: ${error.message}`);
    }
  }

  /**
   * A command for one of our sockets. The call is queued synchronously (before any await),
   * so commands read in stream order reach the charge point's FIFO in that order.
   */
  private async onCommand(command: CommandEnvelope): Promise<void> {
    const { lease } = this.deps;
    this.active++;
    const incarnation = lease.incarnation;
    // A child of the caller's hop when the envelope carries its trace context.
    const attributes = {
      'ocpp.identity': command.identity,
      'ocpp.action': command.action,
      'ocpp.node': this.deps.nodeId,
      'ocpp.origin_node': command.origin,
      'ocpp.hops': command.hops,
    };
    const span = clusterTracer.start(`ocpp.cluster.command ${command.action}`, 'consumer', attributes, command.trace);
    try {
      // Queued before the first await (see above); one async frame instead of a chain of promises.
      let result = await this.runCommand(command, incarnation, span);
      if (result?.status === 'failed' && result.errorCode === LEASE_LOST_CODE) result = await this.afterSuspension();
      span.setAttribute('ocpp.outcome', result?.status ?? 'answered elsewhere');
      if (result && lease.mayAnswer(incarnation)) await this.reply(command, result, span);
    } finally {
      span.end();
      this.active--;
    }
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
  private runCommand(command: CommandEnvelope, incarnation: number, span: ClusterSpan): Promise<CommandOutcome | null> {
    const { lease, router } = this.deps;
    if (Date.now() >= command.deadline) return Promise.resolve({ status: 'timeout', sent: false });
    const connection = router.servingConnection(command.identity);
    // Writing a command read in `incarnation` to a socket is allowed only while the lease is proven.
    const gate = lease.gateFor(incarnation);
    if (!connection) {
      // Waiters wake in the order they were read, so commands keep their order per charge point.
      const handshake = router.handshakeHere(command.identity, command.deadline);
      if (handshake) return handshake.then(() => this.runCommand(command, incarnation, span));
      return router.forward(command, gate);
    }
    if (command.fireAndForget) {
      if (!lease.mayWrite(incarnation)) return Promise.resolve(outcomeFromError(lease.refusal()));
      try {
        connection.rpc.sendMessage(command.action, command.payload);
        return Promise.resolve({ status: 'result', payload: {} });
      } catch (error) {
        return Promise.resolve(outcomeFromError(error));
      }
    }
    return callLocal(connection, command.protocol, command.action, command.payload, command.deadline, gate, span).then(
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

  /**
   * Sends the outcome to the caller, retrying (a Redis blip must not turn an answer into a
   * timeout), in the caller's wire version when it is older than ours (1: no field), so that it can read it.
   */
  private async reply(command: ReplyTarget, outcome: CommandOutcome, span?: ClusterSpan): Promise<void> {
    const { nodeId } = this.deps;
    const identity = command.identity ?? '';
    const hop = span?.child('ocpp.cluster.reply', 'producer', { 'ocpp.target_node': command.origin });
    const envelope = { kind: 'reply', id: command.id, from: nodeId, identity, outcome, v: answerVersion(this.deps.wireVersion, command), trace: hop?.carrier() } as const;
    const delivered = await this.publishReply(command, envelope);
    hop?.end(delivered ? undefined : new Error('reply lost'));
  }

  /** False when the reply was lost (the transport refused it until the caller's deadline passed). */
  private async publishReply(command: ReplyTarget, envelope: ReplyEnvelope): Promise<boolean> {
    const { adapter, logger } = this.deps;
    const giveUpAt = command.deadline + REPLY_GRACE_MS;
    for (let backoffMs = 50; ; backoffMs = Math.min(backoffMs * 2, 1_000)) {
      try {
        await adapter.publish(repliesOf(command.origin), envelope);
        return true;
      } catch (error) {
        if (Date.now() + backoffMs >= giveUpAt || this.deps.hasLeft()) {
          logger.warn(`reply to ${command.origin} for ${command.id} on ${envelope.identity} lost: ${errorMessage(error)}`);
          return false;
        }
        await delay(backoffMs);
      }
    }
  }
}
