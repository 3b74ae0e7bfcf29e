import type { PresenceRecord } from './event-adapter.interface.js';

/**
 * The caller's short memory of which node holds a charge point, so a busy caller does not
 * read presence from Redis for every command. A stale entry costs a hop, never a lost call:
 * an owner that no longer holds the socket forwards the command to the current owner or
 * answers "not connected". Entries are forgotten when their time is up, when the answer
 * came from another node than the one remembered (the command was forwarded), when the
 * owner answered "not connected", and when the owner left the cluster.
 */
export class OwnerCache {
  private readonly entries = new Map<string, { record: PresenceRecord; at: number }>();

  constructor(
    private readonly ttlMs = 1_000,
    private readonly maxEntries = 100_000,
  ) {}

  /** The remembered owner while still fresh. */
  get(identity: string): PresenceRecord | undefined {
    const entry = this.entries.get(identity);
    if (!entry) return undefined;
    if (Date.now() - entry.at < this.ttlMs) return entry.record;
    this.entries.delete(identity);
    return undefined;
  }

  remember(record: PresenceRecord): void {
    if (this.ttlMs === 0) return;
    this.entries.delete(record.identity);
    this.entries.set(record.identity, { record, at: Date.now() });
    // Oldest first (insertion order): a caller talking to a huge fleet keeps the recent ones.
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
  }

  forget(identity: string): void {
    this.entries.delete(identity);
  }

  /** `nodeId` answered a command for `identity`: an entry naming another node is out of date. */
  answeredBy(identity: string, nodeId: string): void {
    const entry = this.entries.get(identity);
    if (entry && entry.record.nodeId !== nodeId) this.entries.delete(identity);
  }

  /** Forgets everything (the node was fenced: what it knew may be stale). */
  clear(): void {
    this.entries.clear();
  }

  forgetNode(nodeId: string): void {
    for (const [identity, entry] of this.entries) if (entry.record.nodeId === nodeId) this.entries.delete(identity);
  }
}
