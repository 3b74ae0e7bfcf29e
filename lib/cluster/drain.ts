import type { EventAdapterInterface, PresenceRecord } from './event-adapter.interface.js';
import type { LocalRegistry } from './local-registry.js';
import type { ClusterLogger } from './logger.js';
import type { DrainReport } from './node-types.js';
import { settleWithin, sleep as delay } from './time-bounds.js';

export interface DrainDeps {
  nodeId: string;
  adapter: EventAdapterInterface;
  registry: LocalRegistry;
  options: { callTimeoutMs: number; drain: { windowMs: number; settleMs: number } };
  logger: ClusterLogger;
  /** Inbox commands being served (the drain waits for them). */
  activeCommands: () => number;
  leaveCluster: () => Promise<void>;
}

/**
 * Hands this node's charge points to the rest of the cluster: sockets close with 1012 spread
 * over the window (with jitter, so they do not all reconnect to one node in the same second);
 * commands for them wait for their new owner and are forwarded; in-flight work finishes; then
 * the node leaves the cluster.
 */
export class DrainController {
  /** Identities this node closed while draining: commands for them wait for the new owner. */
  private readonly handedOver = new Set<string>();
  private running: Promise<DrainReport> | null = null;

  constructor(private readonly deps: DrainDeps) {}

  get isDraining(): boolean {
    return this.running !== null;
  }

  /** True once `identity`'s socket here is being handed over (it takes no new calls). */
  isHandedOver(identity: string): boolean {
    return this.handedOver.size > 0 && this.handedOver.has(identity);
  }

  run(windowMs: number): Promise<DrainReport> {
    this.running ??= this.drain(windowMs);
    return this.running;
  }

  /** A charge point we closed while draining: wait (until the deadline) for it to reconnect elsewhere. */
  async awaitNewOwner(identity: string, deadline: number): Promise<PresenceRecord | null> {
    const { adapter, nodeId } = this.deps;
    while (Date.now() < deadline) {
      const owner = await adapter.getPresence(identity).catch(() => null);
      if (owner && owner.nodeId !== nodeId) return owner;
      if (!owner && !this.handedOver.has(identity)) return null;
      await delay(50);
    }
    return null;
  }

  private async drain(windowMs: number): Promise<DrainReport> {
    const { adapter, registry, options, logger, nodeId } = this.deps;
    const started = Date.now();
    const connections = [...registry.values()];
    logger.log(`draining ${connections.length} charge points over ${windowMs} ms`);
    await Promise.all(
      connections.map(async (connection) => {
        await delay(Math.random() * windowMs);
        // New calls now wait for the charge point's next node; the ones on this socket finish first.
        this.handedOver.add(connection.identity);
        const idleBy = Date.now() + options.callTimeoutMs;
        while ((connection.rpc.inFlightCall !== null || connection.rpc.queuedCalls > 0) && Date.now() < idleBy) {
          await delay(20);
        }
        await connection.rpc.close(1012, 'service restart').catch(() => undefined);
      }),
    );
    const settleUntil = Date.now() + options.drain.settleMs;
    const identities = [...this.handedOver];
    let moved = 0;
    while (Date.now() < settleUntil) {
      // A stalled Redis must not hold the drain past its settle time.
      const lookup = adapter.getPresenceBatch(identities).catch(() => new Map<string, PresenceRecord>());
      const owners = (await settleWithin(lookup, Math.max(1, settleUntil - Date.now()))) ?? new Map<string, PresenceRecord>();
      moved = identities.filter((identity) => {
        const owner = owners.get(identity);
        return owner !== undefined && owner.nodeId !== nodeId;
      }).length;
      if (moved === identities.length && this.deps.activeCommands() === 0) break;
      await delay(50);
    }
    while (this.deps.activeCommands() > 0 && Date.now() < settleUntil + options.callTimeoutMs) await delay(50);
    await this.deps.leaveCluster();
    const report = { closed: connections.length, reconnectedElsewhere: moved, durationMs: Date.now() - started };
    logger.log(`drained: ${report.closed} closed, ${report.reconnectedElsewhere} reconnected elsewhere in ${report.durationMs} ms`);
    return report;
  }
}
