import type { PresenceRecord } from './event-adapter.interface.js';

/** Channel the core uses, over a minimal transport, for liveness and presence announcements. */
export const MEMBERSHIP_CHANNEL = 'membership';

export type MembershipMessage =
  | { kind: 'alive'; nodeId: string }
  /** A node that just joined asks every other node to announce itself and its connections. */
  | { kind: 'hello'; nodeId: string }
  | { kind: 'claim'; record: PresenceRecord }
  | { kind: 'release'; identity: string; nodeId: string; epoch: number }
  | { kind: 'left'; nodeId: string };

export function isMembershipMessage(data: unknown): data is MembershipMessage {
  if (data === null || typeof data !== 'object') return false;
  const kind = (data as { kind?: unknown }).kind;
  return kind === 'alive' || kind === 'hello' || kind === 'claim' || kind === 'release' || kind === 'left';
}

/** (epoch, node id) order: the higher claim wins, the same way on every node. */
function newer(a: PresenceRecord, b: PresenceRecord): boolean {
  return a.epoch > b.epoch || (a.epoch === b.epoch && a.nodeId > b.nodeId);
}

/**
 * Each node's replicated view of the cluster, fed by announcements: who was heard from when
 * (liveness by heartbeat, judged on this node's monotonic clock) and the newest claim of every
 * identity. Eventually consistent: a node learns of a claim when the announcement arrives.
 */
export class GossipMembership {
  private readonly lastHeard = new Map<string, number>();
  private readonly records = new Map<string, PresenceRecord>();

  constructor(
    private readonly self: string,
    private readonly livenessTtlMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Applies one announcement; true when it was a `hello` from another node (answer it). */
  apply(message: MembershipMessage): boolean {
    switch (message.kind) {
      case 'alive':
        this.heard(message.nodeId);
        return false;
      case 'hello':
        this.heard(message.nodeId);
        return message.nodeId !== this.self;
      case 'claim':
        this.heard(message.record.nodeId);
        this.claim(message.record);
        return false;
      case 'release':
        this.release(message.identity, message.nodeId, message.epoch);
        return false;
      case 'left':
        this.forgetNode(message.nodeId);
        return false;
    }
  }

  isAlive(nodeId: string): boolean {
    if (nodeId === this.self) return true;
    const heard = this.lastHeard.get(nodeId);
    return heard !== undefined && this.now() - heard <= this.livenessTtlMs;
  }

  /** Every node heard from within the TTL, this one included. */
  liveNodes(): string[] {
    return [this.self, ...[...this.lastHeard.keys()].filter((nodeId) => nodeId !== this.self && this.isAlive(nodeId))];
  }

  /** Stores `record` if it is newer than what is known; returns the record it replaced, if any. */
  claim(record: PresenceRecord): PresenceRecord | null {
    const current = this.records.get(record.identity) ?? null;
    if (current && !newer(record, current)) return null;
    this.records.set(record.identity, record);
    return current;
  }

  /** Removes the entry only while it is still `nodeId`'s claim at `epoch`. */
  release(identity: string, nodeId: string, epoch: number): boolean {
    const current = this.records.get(identity);
    if (!current || current.nodeId !== nodeId || current.epoch !== epoch) return false;
    this.records.delete(identity);
    return true;
  }

  /** The newest claim of `identity` while its node is alive. */
  owner(identity: string): PresenceRecord | null {
    const record = this.records.get(identity);
    return record && this.isAlive(record.nodeId) ? record : null;
  }

  /** Highest epoch known for `identity` (0 if none). */
  epochOf(identity: string): number {
    return this.records.get(identity)?.epoch ?? 0;
  }

  liveRecords(): PresenceRecord[] {
    return [...this.records.values()].filter((record) => this.isAlive(record.nodeId));
  }

  /** Drops nodes not heard from within the TTL, and their claims. */
  sweep(): void {
    for (const nodeId of this.lastHeard.keys()) if (!this.isAlive(nodeId)) this.forgetNode(nodeId);
  }

  forgetNode(nodeId: string): void {
    this.lastHeard.delete(nodeId);
    for (const [identity, record] of this.records) if (record.nodeId === nodeId) this.records.delete(identity);
  }

  private heard(nodeId: string): void {
    this.lastHeard.set(nodeId, this.now());
  }
}
