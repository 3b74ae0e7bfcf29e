import { NodeIdConflictError } from '../protocol/errors.js';
import type { OcppProtocol } from '../protocol/protocol.js';
import { isAllNodes, type Address, type Subscription } from './address.js';
import type { ClusterMessage } from './envelope.js';
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

/**
 * Shared state of in-process nodes. One bus per adapter by default (a single node);
 * several adapters given the same bus behave as a cluster inside one process.
 */
export class InMemoryBus {
  readonly presence = new Map<string, PresenceRecord>();
  readonly epochs = new Map<string, number>();
  readonly nodes = new Map<string, InMemoryAdapter>();
}

/** The embedded default transport: a single node is complete with no Redis at all. */
export class InMemoryAdapter implements EventAdapterInterface {
  readonly name = 'memory';
  private nodeId: string | null = null;
  private readonly handlers = new Map<Subscription, ClusterMessageHandler>();
  private pending = 0;
  private delivered = 0;

  constructor(private readonly bus: InMemoryBus = new InMemoryBus()) {}

  async connect(nodeId: string, _source: PresenceSnapshotSource): Promise<void> {
    const holder = this.bus.nodes.get(nodeId);
    if (holder && holder !== this) throw new NodeIdConflictError(nodeId);
    this.nodeId = nodeId;
    this.bus.nodes.set(nodeId, this);
  }

  async disconnect(): Promise<void> {
    if (this.nodeId === null) return;
    const self = this.nodeId;
    for (const [identity, record] of this.bus.presence) {
      if (record.nodeId === self) this.bus.presence.delete(identity);
    }
    this.bus.nodes.delete(self);
    this.handlers.clear();
    this.nodeId = null;
  }

  async publish(to: Address, message: ClusterMessage): Promise<void> {
    if (isAllNodes(to)) {
      for (const node of this.bus.nodes.values()) node.deliver('allNodes', message);
      return;
    }
    // One queue per node: both lanes are delivered in publish order.
    this.bus.nodes.get(to.node)?.deliver('node', message);
  }

  async publishBatch(messages: ReadonlyArray<{ to: Address; message: ClusterMessage }>): Promise<void> {
    for (const { to, message } of messages) await this.publish(to, message);
  }

  async subscribe(subscription: Subscription, handler: ClusterMessageHandler): Promise<void> {
    this.handlers.set(subscription, handler);
  }

  async unsubscribe(subscription: Subscription): Promise<void> {
    this.handlers.delete(subscription);
  }

  async setPresence(identity: string, protocol: OcppProtocol, connectedAt: number): Promise<PresenceClaim> {
    const nodeId = this.requireNodeId();
    const epoch = (this.bus.epochs.get(identity) ?? 0) + 1;
    this.bus.epochs.set(identity, epoch);
    const previous = this.liveRecord(this.bus.presence.get(identity));
    const record: PresenceRecord = { identity, nodeId, epoch, protocol, connectedAt };
    this.bus.presence.set(identity, record);
    return { record, previous };
  }

  async getPresence(identity: string): Promise<PresenceRecord | null> {
    return this.liveRecord(this.bus.presence.get(identity));
  }

  async getPresenceBatch(identities: readonly string[]): Promise<Map<string, PresenceRecord>> {
    const found = new Map<string, PresenceRecord>();
    for (const identity of identities) {
      const record = this.liveRecord(this.bus.presence.get(identity));
      if (record) found.set(identity, record);
    }
    return found;
  }

  async removePresence(identity: string, epoch: number): Promise<boolean> {
    const record = this.bus.presence.get(identity);
    if (!record || record.nodeId !== this.nodeId || record.epoch !== epoch) return false;
    this.bus.presence.delete(identity);
    return true;
  }

  async listPresence(): Promise<PresenceRecord[]> {
    return [...this.bus.presence.values()].filter((record) => this.bus.nodes.has(record.nodeId));
  }

  async isNodeAlive(nodeId: string): Promise<boolean> {
    return this.bus.nodes.has(nodeId);
  }

  async liveNodes(): Promise<string[]> {
    return [...this.bus.nodes.keys()];
  }

  isHealthy(): boolean {
    return this.nodeId !== null;
  }

  async probe(_timeoutMs: number): Promise<TransportProbe> {
    return localProbe(this.state());
  }

  async metrics(): Promise<AdapterMetrics> {
    return localMetrics(this.state());
  }

  private state(): LocalTransportState {
    const connected = this.nodeId !== null;
    return {
      connection: 'bus',
      ok: connected,
      livenessHeld: connected && this.bus.nodes.get(this.nodeId!) === this,
      consumerRunning: connected && this.handlers.size > 0,
      pending: this.pending,
      subscriptions: this.handlers.size,
      delivered: this.delivered,
    };
  }

  private deliver(subscription: Subscription, message: ClusterMessage): void {
    const handler = this.handlers.get(subscription);
    if (!handler) return;
    this.pending++;
    // Asynchronous like a real transport, so callers never depend on re-entrant delivery.
    queueMicrotask(() => {
      Promise.resolve()
        .then(() => handler(message))
        .catch(() => undefined)
        .finally(() => {
          this.pending--;
          this.delivered++;
        });
    });
  }

  private liveRecord(record: PresenceRecord | undefined): PresenceRecord | null {
    return record && this.bus.nodes.has(record.nodeId) ? record : null;
  }

  private requireNodeId(): string {
    if (this.nodeId === null) throw new Error('InMemoryAdapter used before connect()');
    return this.nodeId;
  }
}
