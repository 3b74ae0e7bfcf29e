import type { OcppProtocol } from '../protocol/protocol.js';
import { isAllNodes, type Address, type Subscription } from './address.js';
import { BROADCAST_CHANNEL, nodeChannel, type ClusterMessage } from './envelope.js';
import type {
  AdapterMetrics,
  ClusterMessageHandler,
  EventAdapterInterface,
  PresenceClaim,
  PresenceRecord,
  PresenceSnapshotSource,
  TransportProbe,
} from './event-adapter.interface.js';
import { localMetrics, localProbe, type LocalTransportState } from './local-transport-report.js';
import { GossipMembership, isMembershipMessage, MEMBERSHIP_CHANNEL, type MembershipMessage } from './gossip-membership.js';
import type { TransportAdapter, TransportCoreOptions } from './transport-adapter.js';

const DEFAULT_HEARTBEAT_MS = 1_000;
const DEFAULT_PRESENCE_TTL_SECONDS = 300;

/**
 * The core's half of a minimal (seed-shaped) transport: the user's adapter only moves messages
 * between channels; this class adds what the cluster contract needs on top of it.
 * - liveness: heartbeats on MEMBERSHIP_CHANNEL, judged by when they arrive;
 * - presence: records with node-owned epochs (newest wins), replicated to every node by
 *   announcements, read locally (batch reads and listing for free); a node that joins asks the
 *   others to announce theirs;
 * - the user's `setPresence`/`getPresence`/`removePresence`, when given, are kept in step so the
 *   store names the owner of each identity (written on claim, set again before its TTL, removed
 *   only while it still names this node).
 * Without leases there is no fencing, and without a readable pending list a dead owner's
 * commands are not answered early: the caller's own timeout answers them (README, "Writing a transport").
 */
export class CompletedTransport implements EventAdapterInterface {
  readonly name: string;
  private nodeId: string | null = null;
  private source: PresenceSnapshotSource | null = null;
  private membership: GossipMembership | null = null;
  private readonly subscriptions = new Set<Subscription>();
  private readonly timers: NodeJS.Timeout[] = [];
  private lastEpoch = 0;
  private inFlight = 0;
  private delivered = 0;
  private transportError: string | null = null;
  private readonly heartbeatMs: number;
  private readonly livenessTtlMs: number;
  private readonly presenceTtlSeconds: number;

  constructor(
    private readonly transport: TransportAdapter,
    options: TransportCoreOptions = {},
  ) {
    this.name = transport.name ?? 'custom';
    this.heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    this.livenessTtlMs = options.livenessTtlMs ?? 3 * this.heartbeatMs;
    this.presenceTtlSeconds = options.presenceTtlSeconds ?? DEFAULT_PRESENCE_TTL_SECONDS;
  }

  async connect(nodeId: string, source: PresenceSnapshotSource): Promise<void> {
    this.nodeId = nodeId;
    this.source = source;
    const membership = new GossipMembership(nodeId, this.livenessTtlMs);
    this.membership = membership;
    await this.transport.subscribe(MEMBERSHIP_CHANNEL, (data) => {
      if (isMembershipMessage(data) && membership.apply(data)) void this.announce();
    });
    await this.announceOnly({ kind: 'hello', nodeId });
    this.every(this.heartbeatMs, () => {
      membership.sweep();
      void this.announceOnly({ kind: 'alive', nodeId });
    });
    if (this.transport.setPresence) this.every((this.presenceTtlSeconds * 1000) / 2, () => void this.refreshStore());
  }

  async disconnect(): Promise<void> {
    if (this.nodeId === null) return;
    const nodeId = this.nodeId;
    for (const timer of this.timers.splice(0)) clearInterval(timer);
    await this.announceOnly({ kind: 'left', nodeId });
    await this.transport.publish(BROADCAST_CHANNEL, { kind: 'nodeLeft', nodeId } satisfies ClusterMessage).catch(() => undefined);
    const channels = [...this.subscriptions].map((subscription) => this.channelOf(subscription));
    for (const channel of [...channels, MEMBERSHIP_CHANNEL]) await this.transport.unsubscribe(channel).catch(() => undefined);
    this.subscriptions.clear();
    this.nodeId = null;
    await this.transport.disconnect();
  }

  /** Stops announcing at once, as a crash would: the other nodes judge this one dead after livenessTtlMs. */
  abort(): void {
    for (const timer of this.timers.splice(0)) clearInterval(timer);
    this.nodeId = null;
  }

  async publish(to: Address, message: ClusterMessage): Promise<void> {
    await this.tracked(this.transport.publish(channelTo(to), message));
  }

  async publishBatch(messages: ReadonlyArray<{ to: Address; message: ClusterMessage }>): Promise<void> {
    if (this.transport.publishBatch) {
      await this.tracked(this.transport.publishBatch(messages.map(({ to, message }) => ({ channel: channelTo(to), data: message }))));
      return;
    }
    for (const { to, message } of messages) await this.publish(to, message);
  }

  async subscribe(subscription: Subscription, handler: ClusterMessageHandler): Promise<void> {
    const channel = this.channelOf(subscription);
    this.subscriptions.add(subscription);
    await this.transport.subscribe(channel, async (data) => {
      this.inFlight++;
      try {
        await handler(data as ClusterMessage);
      } finally {
        this.inFlight--;
        this.delivered++;
      }
    });
  }

  async unsubscribe(subscription: Subscription): Promise<void> {
    this.subscriptions.delete(subscription);
    await this.transport.unsubscribe(this.channelOf(subscription));
  }

  /** The user's transport knows channels only: one per node (both lanes share it) and one for all. */
  private channelOf(subscription: Subscription): string {
    return subscription === 'allNodes' ? BROADCAST_CHANNEL : nodeChannel(this.joined().nodeId);
  }

  async setPresence(identity: string, protocol: OcppProtocol, connectedAt: number): Promise<PresenceClaim> {
    const { nodeId, membership } = this.joined();
    const previousOwner = membership.owner(identity);
    // The node owns epochs: above anything known for the identity, and above the clock so that
    // claims made without hearing of each other still order as their connections did.
    const epoch = Math.max(Date.now(), this.lastEpoch + 1, membership.epochOf(identity) + 1);
    this.lastEpoch = epoch;
    const record: PresenceRecord = { identity, nodeId, epoch, protocol, connectedAt };
    membership.claim(record);
    await this.transport.setPresence?.(identity, nodeId, this.presenceTtlSeconds);
    await this.announceOnly({ kind: 'claim', record });
    return { record, previous: previousOwner };
  }

  async getPresence(identity: string): Promise<PresenceRecord | null> {
    return this.joined().membership.owner(identity);
  }

  async getPresenceBatch(identities: readonly string[]): Promise<Map<string, PresenceRecord>> {
    const { membership } = this.joined();
    const found = new Map<string, PresenceRecord>();
    for (const identity of identities) {
      const record = membership.owner(identity);
      if (record) found.set(identity, record);
    }
    return found;
  }

  async removePresence(identity: string, epoch: number): Promise<boolean> {
    const { nodeId, membership } = this.joined();
    if (!membership.release(identity, nodeId, epoch)) return false;
    await this.announceOnly({ kind: 'release', identity, nodeId, epoch });
    await this.removeFromStore(identity, nodeId);
    return true;
  }

  async listPresence(): Promise<PresenceRecord[]> {
    return this.joined().membership.liveRecords();
  }

  async isNodeAlive(nodeId: string): Promise<boolean> {
    return this.membership?.isAlive(nodeId) ?? false;
  }

  async liveNodes(): Promise<string[]> {
    return this.joined().membership.liveNodes();
  }

  isHealthy(): boolean {
    return this.nodeId !== null && this.transportError === null;
  }

  healthIssue(): string | null {
    if (this.nodeId === null) return `${this.name} transport not connected`;
    return this.transportError === null ? null : `${this.name} transport: ${this.transportError}`;
  }

  /** A user transport has no ping: its health is whether its last publish succeeded. */
  async probe(_timeoutMs: number): Promise<TransportProbe> {
    return localProbe(this.state());
  }

  async metrics(): Promise<AdapterMetrics> {
    return localMetrics(this.state(), { knownPresence: this.membership?.liveRecords().length ?? 0 });
  }

  private state(): LocalTransportState {
    return {
      connection: this.name,
      ok: this.isHealthy(),
      error: this.isHealthy() ? undefined : (this.healthIssue() ?? undefined),
      livenessHeld: this.nodeId !== null,
      consumerRunning: this.nodeId !== null && this.subscriptions.has('node'),
      pending: this.inFlight,
      subscriptions: this.subscriptions.size,
      delivered: this.delivered,
    };
  }

  /** Answers a `hello`: this node is alive and holds these connections. */
  private async announce(): Promise<void> {
    const nodeId = this.nodeId;
    if (nodeId === null || !this.source) return;
    const messages: MembershipMessage[] = [{ kind: 'alive', nodeId }];
    for (const record of this.source.localPresence()) messages.push({ kind: 'claim', record: { ...record, nodeId } });
    for (const message of messages) await this.announceOnly(message);
  }

  private async announceOnly(message: MembershipMessage): Promise<void> {
    await this.tracked(this.transport.publish(MEMBERSHIP_CHANNEL, message)).catch(() => undefined);
  }

  private async refreshStore(): Promise<void> {
    const nodeId = this.nodeId;
    if (nodeId === null || !this.source || !this.transport.setPresence) return;
    for (const record of this.source.localPresence()) {
      await this.tracked(this.transport.setPresence(record.identity, nodeId, this.presenceTtlSeconds)).catch(() => undefined);
    }
  }

  /** The seed's removePresence is unconditional: remove only while the store still names us (not atomic). */
  private async removeFromStore(identity: string, nodeId: string): Promise<void> {
    if (!this.transport.removePresence) return;
    if (this.transport.getPresence && (await this.transport.getPresence(identity)) !== nodeId) return;
    await this.transport.removePresence(identity);
  }

  /** Remembers whether the transport's last operation failed, for readiness. */
  private async tracked<T>(operation: Promise<T>): Promise<T> {
    try {
      const result = await operation;
      this.transportError = null;
      return result;
    } catch (error) {
      this.transportError = error instanceof Error ? error.message : String(error);
      throw error;
    }
  }

  private every(ms: number, run: () => void): void {
    const timer = setInterval(run, ms);
    timer.unref();
    this.timers.push(timer);
  }

  private joined(): { nodeId: string; membership: GossipMembership } {
    if (this.nodeId === null || this.membership === null) throw new Error(`${this.name} transport used before connect()`);
    return { nodeId: this.nodeId, membership: this.membership };
  }
}

/** The seed transport's channel for an address (the completed transport makes these strings and never parses them). */
function channelTo(to: Address): string {
  return isAllNodes(to) ? BROADCAST_CHANNEL : nodeChannel(to.node);
}
