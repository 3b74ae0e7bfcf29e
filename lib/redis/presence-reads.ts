import type { PresenceRecord } from '../cluster/event-adapter.interface.js';
import { ClusterUnavailableError } from '../protocol/errors.js';
import type { NodeLiveness } from './node-liveness.js';
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

/**
 * Who is alive and who owns what, as read from Redis: an owner counts only while its node holds
 * its liveness key, and "nobody" is said only while presence can be trusted.
 */
export class PresenceReads {
  constructor(private readonly deps: PresenceReadsDeps) {}

  async getPresence(identity: string): Promise<PresenceRecord | null> {
    let record: PresenceRecord | null;
    let alive: boolean;
    try {
      record = await this.deps.presence.get(identity);
      if (!record) {
        this.requireTrustedPresence(identity);
        return null;
      }
      alive = await this.isAlive(record.nodeId);
    } catch (error) {
      throw this.deps.unavailable(error);
    }
    if (alive) return record;
    this.requireTrustedPresence(identity);
    return null;
  }

  async getPresenceBatch(identities: readonly string[]): Promise<Map<string, PresenceRecord>> {
    try {
      const records = await this.deps.presence.getBatch(identities);
      const alive = await this.aliveSet(new Set([...records.values()].map((record) => record.nodeId)));
      for (const [identity, record] of records) if (!alive.has(record.nodeId)) records.delete(identity);
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
