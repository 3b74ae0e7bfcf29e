import { randomUUID } from 'node:crypto';
import type { LostNodeClaim, NodeLossPrimitives } from '../cluster/event-adapter.interface.js';
import { TAKEOVER_FENCE, TOKEN_ACQUIRE, TOKEN_RELEASE } from './lua-scripts.js';
import { RedisLostNodeClaim, type LostNodeClaimDeps } from './lost-node-claim.js';
import { HOLDER_TTL_MS, takeoverMarker } from './node-liveness.js';

export interface RedisNodeLossOptions extends LostNodeClaimDeps {
  selfId: string;
}

/**
 * What Redis offers the cluster's node-loss handling (cluster/node-loss.ts): the registry of
 * nodes that joined, liveness keys, a lock per lost node, and a fence.
 *
 * A node counts as lost only while this node's own lease is held and Redis has answered it
 * promptly for a whole TTL (a stall of Redis lapses every key at once and is no node's death).
 * Claiming takes the lock `{n:<lost>}:takeover` (SET NX PX, renewed while the claim is used)
 * and, before anything is answered, marks the node taken over (only while its liveness key is
 * absent), so the lost node's process, should it wake up, learns that before it serves again.
 */
export class RedisNodeLoss implements NodeLossPrimitives {
  constructor(private readonly options: RedisNodeLossOptions) {}

  async lostNodes(): Promise<string[]> {
    const { keys, pool, selfId, liveness } = this.options;
    if (!liveness.isSteady()) return [];
    const members = await pool.pick(keys.registry).zrange(keys.registry, '0', '-1');
    const lost: string[] = [];
    for (const nodeId of members) {
      if (nodeId !== selfId && !(await liveness.isAliveNow(nodeId))) lost.push(nodeId);
    }
    return lost;
  }

  async claimLostNode(nodeId: string): Promise<LostNodeClaim | null> {
    const { keys, pool, selfId, lockTtlMs } = this.options;
    const lockKey = keys.takeoverLock(nodeId);
    const lockToken = randomUUID();
    const [locked] = (await TOKEN_ACQUIRE.run(pool.pick(lockKey), [lockKey], [lockToken, lockTtlMs])) as [number, number];
    if (locked !== 1) return null;
    const claim = new RedisLostNodeClaim(nodeId, lockToken, this.options);
    try {
      // Released by a survivor that just finished: the node left the registry before its lock.
      if ((await pool.pick(keys.registry).zscore(keys.registry, nodeId)) === null) throw new NotLost();
      if (!(await claim.stillHeld())) throw new NotLost();
      const marker = takeoverMarker(selfId, lockToken);
      const fenced = await TAKEOVER_FENCE.run(pool.pick(keys.alive(nodeId)), [keys.alive(nodeId), keys.holder(nodeId)], [marker, HOLDER_TTL_MS]);
      if (Number(fenced) !== 1) throw new NotLost();
      return claim;
    } catch (error) {
      await TOKEN_RELEASE.run(pool.pick(lockKey), [lockKey], [lockToken]).catch(() => undefined);
      if (error instanceof NotLost) return null;
      throw error;
    }
  }
}

/** The node turned out not to be lost (or already cleared) while it was being claimed. */
class NotLost extends Error {}
