import { randomUUID } from 'node:crypto';
import { NodeShuttingDownError, OcppTimeoutError } from '../protocol/errors.js';
import { mapSettledBounded } from './bounded-all.js';
import type { CallChecks } from './call-checks.js';
import type { BroadcastEnvelope, CommandOutcome } from './envelope.js';
import { answerVersion } from './envelope.js';
import { ALL_NODES, repliesOf } from './address.js';
import type { EventAdapterInterface } from './event-adapter.interface.js';
import type { LeaseGuard } from './lease-guard.js';
import { callLocal } from './local-call.js';
import type { LocalRegistry } from './local-registry.js';
import type { ClusterMetricsSink } from './metrics-sink.js';
import type { BroadcastOptions, BroadcastSummary } from './node-types.js';
import { refuseDeliveryWindow } from './parked-calls.js';
import { beforeDeadline } from './time-bounds.js';

export interface BroadcastsDeps {
  nodeId: string;
  adapter: EventAdapterInterface;
  registry: LocalRegistry;
  lease: LeaseGuard;
  checks: CallChecks;
  metricsSink: ClusterMetricsSink;
  concurrency: number;
  isStopping: () => boolean;
  /** This node's wire version: a report goes back in the origin's, when older. */
  wireVersion: number;
}

/** Cluster-wide fan-out: every node delivers to its own sockets and reports back to the origin. */
export class Broadcasts {
  private readonly waits = new Map<string, { replies: Map<string, BroadcastSummary>; onReply(): void }>();

  constructor(private readonly deps: BroadcastsDeps) {}

  /** Every connected charge point in the cluster gets the call; each node delivers its own. */
  async broadcast(action: string, payload: Record<string, unknown>, options: BroadcastOptions = {}): Promise<BroadcastSummary> {
    refuseDeliveryWindow(options, 'broadcast');
    const { adapter, checks, nodeId } = this.deps;
    if (this.deps.isStopping()) throw new NodeShuttingDownError();
    const timeoutMs = checks.timeoutOf(options);
    checks.requireEncodable(action, payload);
    const envelope: BroadcastEnvelope = {
      kind: 'broadcast',
      id: randomUUID(),
      origin: nodeId,
      action,
      payload,
      protocol: options.protocol,
      deadline: Date.now() + timeoutMs,
    };
    checks.validateRequest(options.protocol, action, payload);
    // Every live node reports (those without sockets too, quickly): no presence is read for it.
    // Nothing was sent while the live nodes are read: past the deadline (a stalled transport) it is "timed out, not sent".
    const owners = new Set(await beforeDeadline(adapter.liveNodes(), envelope.deadline, () => new OcppTimeoutError('*', action, timeoutMs, false)));
    owners.add(nodeId);
    const replies = new Map<string, BroadcastSummary>();
    const allReported = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs + 1_000);
      timer.unref?.();
      this.waits.set(envelope.id, {
        replies,
        onReply: () => {
          if ([...owners].every((node) => replies.has(node))) {
            clearTimeout(timer);
            resolve();
          }
        },
      });
    });
    try {
      // The summary is due when the reports are (deadline + 1 s), even while a stalled transport holds the publish.
      await Promise.race([adapter.publish(ALL_NODES, envelope).then(() => allReported), allReported]);
    } finally {
      this.waits.delete(envelope.id);
    }
    const summary: BroadcastSummary = { delivered: 0, failed: 0, nodes: replies.size };
    for (const reply of replies.values()) {
      summary.delivered += reply.delivered;
      summary.failed += reply.failed;
    }
    return summary;
  }

  /** A broadcast reached this node: deliver it to our sockets and report to its origin. */
  async deliver(message: BroadcastEnvelope): Promise<void> {
    const { nodeId, registry, lease } = this.deps;
    const targets = [...registry.values()].filter((connection) => !message.protocol || connection.protocol === message.protocol);
    this.deps.metricsSink.broadcastFanout(targets.length);
    const gate = message.origin === nodeId ? undefined : lease.gateFor(lease.incarnation);
    const results = await mapSettledBounded(targets, this.deps.concurrency, (connection) =>
      callLocal(connection, undefined, message.action, message.payload, message.deadline, gate),
    );
    const delivered = results.filter((result) => result.status === 'fulfilled').length;
    const summary = { delivered, failed: results.length - delivered, nodes: 1 };
    if (message.origin === nodeId) {
      this.onReply(message.id, nodeId, { status: 'result', payload: { ...summary } });
      return;
    }
    await this.deps.adapter.publish(repliesOf(message.origin), {
      kind: 'reply',
      id: message.id,
      from: nodeId,
      identity: '',
      outcome: { status: 'result', payload: { ...summary } },
      v: answerVersion(this.deps.wireVersion, message),
    });
  }

  /**
   * A node's report for one of our broadcasts (ignored once nobody waits for it). A refusal
   * (the node could not read our wire version) reports nothing delivered, so the wait ends.
   */
  onReply(id: string, from: string, outcome: CommandOutcome): void {
    const wait = this.waits.get(id);
    if (!wait) return;
    const { delivered, failed } = outcome.status === 'result' ? (outcome.payload as { delivered: number; failed: number }) : { delivered: 0, failed: 0 };
    wait.replies.set(from, { delivered, failed, nodes: 1 });
    wait.onReply();
  }
}
