import type { PresenceRecord } from '../cluster/event-adapter.interface.js';
import { ClusterUnavailableError } from '../protocol/errors.js';
import { isProvenGone, type NodeLiveness } from './node-liveness.js';
import type { PresenceStore } from './presence-store.js';
import type { RedisConnectionPool } from './redis-connection-pool.js';
import { keyPartProblem, type RedisKeys } from './redis-keys.js';

export interface PresenceReadsDeps {
  keys: RedisKeys;
  pool: RedisConnectionPool;
  presence: PresenceStore;
  /** This node's liveness once connected (its cache of others' liveness, and its doubt). */
  liveness: () => NodeLiveness | null;
  /** The Redis error in our words. */
  unavailable: (error: unknown) => Error;
}

/** What a presence entry's node is, as far as a caller may judge (see ownerState). */
type OwnerState = 'alive' | 'lapsed' | 'gone';

/**
 * Who is alive and who owns what, as read from Redis: an owner counts only while its node holds
 * its liveness key, and "nobody" is said only while presence can be trusted and the owner, if
 * any, is proven gone (taken over or left; a merely lapsed owner is "unavailable").
 */
export class PresenceReads {
  constructor(private readonly deps: PresenceReadsDeps) {}

  async getPresence(identity: string): Promise<PresenceRecord | null> {
    let record: PresenceRecord | null;
    let ownerState: OwnerState;
    try {
      record = await this.deps.presence.get(identity);
      if (!record) {
        this.requireTrustedPresence(identity);
        return null;
      }
      ownerState = await this.ownerState(record.nodeId);
    } catch (error) {
      throw this.deps.unavailable(error);
    }
    if (ownerState === 'alive') return record;
    if (ownerState === 'lapsed') {
      throw new ClusterUnavailableError(
        `cannot tell whether ${identity} is connected: its node ${record.nodeId} cannot prove its lease and was not taken over`,
      );
    }
    this.requireTrustedPresence(identity);
    return null;
  }

  /**
   * Like getPresence, except that an owner whose node lapsed without being taken over keeps its
   * entry (a batch has no per-identity "unavailable"): its command waits in that node's inbox,
   * served once the node takes its lease back, or answered by the survivor that takes it over.
   */
  async getPresenceBatch(identities: readonly string[]): Promise<Map<string, PresenceRecord>> {
    try {
      const records = await this.deps.presence.getBatch(identities);
      const nodeIds = [...new Set([...records.values()].map((record) => record.nodeId))];
      const states = new Map(await Promise.all(nodeIds.map(async (nodeId) => [nodeId, await this.ownerState(nodeId)] as const)));
      for (const [identity, record] of records) if (states.get(record.nodeId) === 'gone') records.delete(identity);
      return records;
    } catch (error) {
      throw this.deps.unavailable(error);
    }
  }

  async listPresence(): Promise<PresenceRecord[]> {
    try {
      const lists = await Promise.all((await this.aliveMembers()).map((nodeId) => this.deps.presence.listOwned(nodeId)));
      return lists.flat();
    } catch (error) {
      throw this.deps.unavailable(error);
    }
  }

  /** The registry's members whose liveness key is held: one ZRANGE and one EXISTS per node, no presence read. */
  async liveNodes(): Promise<string[]> {
    try {
      return await this.aliveMembers();
    } catch (error) {
      throw this.deps.unavailable(error);
    }
  }

  async isNodeAlive(nodeId: string): Promise<boolean> {
    if (keyPartProblem(nodeId)) return false;
    try {
      return await this.isAlive(nodeId);
    } catch (error) {
      throw this.deps.unavailable(error);
    }
  }

  isNodeKnownAlive(nodeId: string): boolean {
    return this.deps.liveness()?.isKnownAlive(nodeId) ?? false;
  }

  presenceDoubt(): string | null {
    return this.deps.liveness()?.presenceDoubt() ?? null;
  }

  isAlive(nodeId: string): Promise<boolean> {
    const liveness = this.deps.liveness();
    if (liveness) return liveness.isAlive(nodeId);
    const key = this.deps.keys.alive(nodeId);
    return this.deps.pool.pick(key).exists(key).then((count) => count === 1);
  }

  /**
   * A lapsed liveness key or a missing entry means "not connected" only while presence can be
   * trusted: a stall of Redis lapses every key at once, and a restart of Redis loses every entry
   * until the nodes re-register; a charge point on a node that is merely catching up must not be
   * reported definitively not connected.
   */
  private requireTrustedPresence(identity: string): void {
    const doubt = this.presenceDoubt();
    if (doubt) throw new ClusterUnavailableError(`cannot tell whether ${identity} is connected: ${doubt}`);
  }

  /**
   * Alive (it holds its liveness key), gone (proven: taken over or left), or lapsed (its key is
   * missing but nobody took it over: frozen, stalled, cut off by a failover; it takes the key back
   * when it can). Only "gone" lets a caller answer a definitive NotConnected.
   */
  private async ownerState(nodeId: string): Promise<OwnerState> {
    if (await this.isAlive(nodeId)) return 'alive';
    return (await isProvenGone(this.deps.pool, this.deps.keys, nodeId)) ? 'gone' : 'lapsed';
  }

  private async aliveMembers(): Promise<string[]> {
    const { keys, pool } = this.deps;
    const members = await pool.pick(keys.registry).zrange(keys.registry, '0', '-1');
    return [...(await this.aliveSet(new Set(members)))];
  }

  private async aliveSet(nodeIds: Set<string>): Promise<Set<string>> {
    const checks = await Promise.all([...nodeIds].map(async (nodeId) => [nodeId, await this.isAlive(nodeId)] as const));
    return new Set(checks.filter(([, alive]) => alive).map(([nodeId]) => nodeId));
  }
}
