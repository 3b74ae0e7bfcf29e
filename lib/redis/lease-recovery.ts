import type { PresenceSnapshotSource } from '../cluster/event-adapter.interface.js';
import type { ClusterLogger } from '../cluster/logger.js';
import { beforeDeadline, sleep } from '../cluster/time-bounds.js';
import type { LeaseEvent, NodeLiveness } from './node-liveness.js';
import type { PresenceRegistration } from './presence-registration.js';
import type { RedisMessaging } from './redis-messaging.js';

export interface LeaseRecoveryDeps {
  nodeId: string;
  source: PresenceSnapshotSource;
  liveness: NodeLiveness;
  messaging: RedisMessaging;
  registration: PresenceRegistration;
  logger: ClusterLogger;
  nodeTtlMs: number;
  /** True while the adapter is a member of the cluster (not leaving, closed or in conflict). */
  isConnected: () => boolean;
  /** Another process holds our node id: the adapter stops acting as this node. */
  onConflict: () => void;
}

/**
 * What this node does when Redis comes back or its lease changes: re-acquire liveness,
 * re-read its pending inbox and re-register presence after a reconnect or a failover (and once
 * more a TTL later); pass lease changes on to the node (fencing); rejoin under a fresh lease
 * after a takeover.
 */
export class LeaseRecovery {
  private recovering: Promise<void> | null = null;
  private recoverAgain = false;
  private rejoining: Promise<void> | null = null;
  /** The second look at our presence entries a TTL after a failover or a reconnect (see recheckPresenceLater). */
  private presenceRecheck: NodeJS.Timeout | null = null;
  readonly counters = { recoveries: 0, rejoins: 0 };

  constructor(private readonly deps: LeaseRecoveryDeps) {}

  get isRecovering(): boolean {
    return this.recovering !== null;
  }

  get isRejoining(): boolean {
    return this.rejoining !== null;
  }

  /** Runs one recovery at a time; a request during a run triggers one more run after it. */
  schedule(reason: string): void {
    if (!this.deps.isConnected()) return;
    if (this.recovering) {
      this.recoverAgain = true;
      return;
    }
    this.deps.logger.log(`recovering cluster state: ${reason}`);
    this.recovering = this.recover().finally(() => {
      this.recovering = null;
      if (this.recoverAgain) {
        this.recoverAgain = false;
        this.schedule('requested again during recovery');
      }
    });
  }

  /**
   * A failover can lose writes its old master answered around the time we noticed it (a master
   * that stalled answers what it had queued, then resyncs as a replica), such as the claim of a
   * socket that opened just after the recovery re-registered ours. Left alone, that socket would
   * be missing from presence until the periodic refresh (a third of the presence TTL), and every
   * other node would answer NotConnected for it. So our sockets are re-registered once more a TTL
   * later (retried by the periodic refresh if Redis fails again).
   */
  recheckPresenceLater(): void {
    if (this.presenceRecheck) clearTimeout(this.presenceRecheck);
    this.presenceRecheck = setTimeout(() => {
      this.presenceRecheck = null;
      void (async () => {
        await this.recovering;
        if (!this.deps.isConnected()) return;
        // As a recovery does: re-registers what is missing, never over a newer connection.
        await this.deps.registration.rehydrate();
      })().catch((error: unknown) => this.deps.logger.debug?.(`presence re-check failed: ${(error as Error).message}`));
    }, this.deps.nodeTtlMs);
    this.presenceRecheck.unref();
  }

  /** Stops the pending presence re-check (leaving, closed, or in conflict). */
  stop(): void {
    if (this.presenceRecheck) clearTimeout(this.presenceRecheck);
    this.presenceRecheck = null;
  }

  onLeaseEvent(event: LeaseEvent): void {
    if (!this.deps.isConnected()) return;
    const source = this.deps.source;
    switch (event) {
      case 'suspended':
        source.onLeaseChange?.('suspended');
        return;
      case 'resumed':
        source.onLeaseChange?.('resumed');
        // The key may have been lost with Redis's data: re-read the inbox and re-register presence.
        this.schedule('liveness key taken back');
        return;
      case 'takenOver':
        this.rejoining ??= this.rejoin().finally(() => {
          this.rejoining = null;
        });
        return;
      case 'conflict':
        this.deps.onConflict();
        return;
    }
  }

  private async recover(): Promise<void> {
    const { liveness, nodeTtlMs } = this.deps;
    let backoffMs = 100;
    while (this.deps.isConnected()) {
      try {
        // Bounded: a command on a connection that broke may never settle, and recovery must go on.
        const lease = await beforeDeadline(liveness.reacquire(), Date.now() + nodeTtlMs, () => new Error(`liveness not answered within ${nodeTtlMs} ms`));
        // Taken over or conflict: onLeaseEvent (told by reacquire) handles it.
        if (lease !== 'resumed') return;
        liveness.start();
        // After a reconnect Redis may have lost presence (a restart): other nodes may still be
        // re-registering their sockets, so an absent entry means "unknown" for a while.
        liveness.noteDisturbance();
        await this.deps.messaging.inboxConsumer?.resync();
        await this.deps.registration.rehydrate();
        this.counters.recoveries++;
        return;
      } catch (error) {
        this.deps.logger.debug?.(`recovery attempt failed: ${(error as Error).message}`);
        await sleep(backoffMs);
        backoffMs = Math.min(backoffMs * 2, 2000);
      }
    }
  }

  /**
   * A survivor took this node over while its lease had lapsed (it was frozen, or cut off from
   * Redis): everything read before was answered there. Stop reading at once (nothing more is
   * acknowledged), let the node drop what it held and close its sockets, then come back under
   * a fresh token with a new reader, which answers what is left of the old pending entries as
   * possibly delivered and never sends them.
   */
  private async rejoin(): Promise<void> {
    const { nodeId, logger, liveness, messaging, source } = this.deps;
    logger.error(`node ${nodeId} was taken over while its lease had lapsed; dropping what it read and rejoining`);
    messaging.abortReading();
    source.onLeaseChange?.('fenced');
    let backoffMs = 100;
    while (this.deps.isConnected()) {
      try {
        if (!(await liveness.renew())) {
          this.deps.onConflict();
          return;
        }
        liveness.start();
        await messaging.resumeReading(nodeId);
        this.counters.rejoins++;
        logger.log(`node ${nodeId} rejoined the cluster under a fresh lease`);
        source.onLeaseChange?.('rejoined');
        return;
      } catch (error) {
        logger.debug?.(`rejoining failed: ${(error as Error).message}`);
        await sleep(backoffMs);
        backoffMs = Math.min(backoffMs * 2, 2000);
      }
    }
  }
}
