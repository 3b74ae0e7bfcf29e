import type { PresenceRecord, PresenceRestore, PresenceSnapshotSource } from '../cluster/event-adapter.interface.js';
import type { ClusterLogger } from '../cluster/logger.js';
import type { PresenceStore, RehydrateResult } from './presence-store.js';

/** Backoff of the retry of failed presence claims (see retry). */
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 2000;

export interface PresenceRegistrationDeps {
  nodeId: string;
  source: PresenceSnapshotSource;
  presence: PresenceStore;
  presenceTtlMs: number;
  logger: ClusterLogger;
  isAlive: (nodeId: string) => Promise<boolean>;
  /** False once the adapter left the cluster (or lost its node id): timers stop. */
  isActive: () => boolean;
  /** A recovery re-registers everything itself: the periodic refresh waits for it. */
  isRecovering: () => boolean;
}

/**
 * Keeps this node's sockets registered in Redis: refreshed every third of the presence TTL,
 * re-registered after an outage (without overwriting newer owners) and retried with a backoff
 * when a claim failed. The node owns its sockets and their epochs: it is told what each
 * re-registration found (PresenceRestore) and acts on it; this keeps no epochs of its own.
 */
export class PresenceRegistration {
  /** Identities whose claim or re-registration failed: retried with a short backoff, not only at the next refresh. */
  private readonly unregistered = new Set<string>();
  private retryTimer: NodeJS.Timeout | null = null;
  private refreshTimer: NodeJS.Timeout | null = null;
  private backoffMs = RETRY_MIN_MS;
  readonly counters = { rehydrated: 0, rehydrateRefused: 0, evictsSent: 0, presenceRefreshFailures: 0 };

  constructor(private readonly deps: PresenceRegistrationDeps) {}

  /**
   * Re-registers local sockets and tells the node what it found: the epoch a socket accepted
   * unclaimed now holds, a socket a newer connection superseded, an older owner elsewhere this
   * one displaced.
   */
  async rehydrate(records?: PresenceRecord[]): Promise<RehydrateResult[]> {
    const { nodeId, presence, source } = this.deps;
    const local = records ?? this.localRecords();
    if (local.length === 0) return [];
    const results = await presence.rehydrate(local, nodeId);
    const tell = (restore: PresenceRestore): boolean | void => source.onPresenceRestored?.(restore);
    const unclaimed = new Set(local.filter((record) => record.epoch === 0).map((record) => record.identity));
    // A socket that closed while this was in flight removed nothing (the entry was missing then):
    // what we wrote back for it must go, or it stays listed for the whole presence TTL.
    const open = new Set(source.localPresence().map((record) => `${record.identity}\u0000${record.epoch}`));
    for (const { record, status, existing } of results) {
      if (status === 'refused') {
        this.counters.rehydrateRefused++;
        if (existing && existing.nodeId !== nodeId) {
          tell({ kind: 'superseded', identity: record.identity, epoch: record.epoch, newOwner: existing.nodeId });
          this.counters.evictsSent++;
        }
        continue;
      }
      if (!unclaimed.has(record.identity) && !open.has(`${record.identity}\u0000${record.epoch}`)) {
        await presence.remove(record.identity, nodeId, record.epoch).catch(() => undefined);
        continue;
      }
      this.counters.rehydrated++;
      if (unclaimed.has(record.identity) && tell({ kind: 'registered', identity: record.identity, epoch: record.epoch }) === false) {
        // The socket closed meanwhile: what we wrote for it must go.
        await presence.remove(record.identity, nodeId, record.epoch).catch(() => undefined);
        continue;
      }
      if (status === 'displaced' && existing && existing.nodeId !== nodeId && (await this.deps.isAlive(existing.nodeId))) {
        tell({ kind: 'displaced', identity: record.identity, previous: existing });
        this.counters.evictsSent++;
      }
    }
    return results;
  }

  /**
   * Registers these identities' local sockets again soon, with a backoff from 100 ms to 2 s
   * while it fails: a charge point accepted while Redis refused writes becomes reachable
   * within seconds of recovery, not at the next refresh (a third of the presence TTL).
   */
  retry(identities: readonly string[]): void {
    for (const identity of identities) this.unregistered.add(identity);
    if (this.retryTimer || this.unregistered.size === 0 || !this.deps.isActive()) return;
    this.retryTimer = setTimeout(() => void this.registerUnregistered(), this.backoffMs);
    this.retryTimer.unref();
  }

  /** Starts the periodic refresh (every third of the presence TTL). */
  start(): void {
    const intervalMs = Math.max(100, Math.floor(this.deps.presenceTtlMs / 3));
    this.refreshTimer = setTimeout(() => {
      void this.refresh().finally(() => {
        if (this.deps.isActive()) this.start();
      });
    }, intervalMs);
    this.refreshTimer.unref();
  }

  stop(): void {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  /**
   * The periodic refresh (also callable at any time): extends our entries' TTL; re-registers the
   * ones Redis lost and the ones that never got an epoch. A socket is only in the local
   * registry once its claim returned, so this never claims a connection whose claim is in flight.
   */
  async refresh(): Promise<void> {
    if (!this.deps.isActive() || this.deps.isRecovering()) return;
    const records = this.localRecords();
    let toRegister: PresenceRecord[] = records.filter((record) => record.epoch === 0);
    try {
      const { missing } = await this.deps.presence.refresh(records, this.deps.nodeId);
      toRegister = [...missing, ...toRegister];
      if (toRegister.length > 0) await this.rehydrate(toRegister);
    } catch (error) {
      this.counters.presenceRefreshFailures++;
      this.deps.logger.debug?.(`presence refresh failed: ${(error as Error).message}`);
      this.retry(toRegister.map((record) => record.identity));
    }
  }

  private async registerUnregistered(): Promise<void> {
    this.retryTimer = null;
    if (!this.deps.isActive()) return;
    const pending = new Set(this.unregistered);
    this.unregistered.clear();
    // Sockets that closed meanwhile need nothing; the others are re-registered as after an outage.
    const records = this.localRecords().filter((record) => pending.has(record.identity));
    try {
      if (records.length > 0) await this.rehydrate(records);
      this.backoffMs = RETRY_MIN_MS;
    } catch (error) {
      this.deps.logger.debug?.(`presence registration retry failed: ${(error as Error).message}`);
      this.backoffMs = Math.min(this.backoffMs * 2, RETRY_MAX_MS);
      this.retry(records.map((record) => record.identity));
      return;
    }
    this.retry([]);
  }

  /** This node's sockets as presence records (the node's epochs; 0 for those never registered). */
  private localRecords(): PresenceRecord[] {
    const nodeId = this.deps.nodeId;
    return this.deps.source.localPresence().map((record) => ({ ...record, nodeId }));
  }
}
