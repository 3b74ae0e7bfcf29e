import { Cluster } from 'ioredis';
import type { PresenceRecord } from '../cluster/event-adapter.interface.js';
import { isOcppProtocol, type OcppProtocol } from '../protocol/protocol.js';
import {
  PRESENCE_CLAIM,
  PRESENCE_READ,
  PRESENCE_REFRESH_IF_OWNER,
  PRESENCE_REHYDRATE,
  PRESENCE_REMOVE_IF_OWNER,
  REHYDRATE_DISPLACED,
  REHYDRATE_KEPT,
  REHYDRATE_REFUSED,
  REHYDRATE_WRITTEN,
  runPipelined,
  type ScriptCall,
} from './lua-scripts.js';
import type { RedisConnectionPool } from './redis-connection-pool.js';
import type { RedisClient } from './redis-driver.js';
import { groupBySlot, keySlot, type RedisKeys } from './redis-keys.js';
import { TickBatcher } from './tick-batcher.js';

/** Commands per pipeline on bulk reads and writes. */
const BATCH_SIZE = 500;
/** Identities per batched script call: bounds how long one call holds Redis (a few ms). */
const IDENTITIES_PER_SCRIPT = 200;
/** Pipelines in flight at once on bulk operations. */
const BATCH_CONCURRENCY = 8;

export interface PresenceStoreOptions {
  keys: RedisKeys;
  pool: RedisConnectionPool;
  presenceTtlMs: number;
}

export type RehydrateStatus = 'kept' | 'written' | 'displaced' | 'refused';

export interface RehydrateResult {
  /** The local connection, with the epoch it holds now (a new one when it had none). */
  record: PresenceRecord;
  status: RehydrateStatus;
  /** The entry found in Redis before (the newer owner when refused, the older one when displaced). */
  existing: PresenceRecord | null;
}

export interface ClaimResult {
  record: PresenceRecord;
  /** The raw entry the claim replaced. */
  previous: PresenceRecord | null;
}

interface ClaimRequest {
  identity: string;
  nodeId: string;
  protocol: OcppProtocol;
  connectedAt: number;
  key: string;
  epochKey: string;
}

export interface RefreshResult {
  refreshed: number;
  /** Entries Redis no longer has (expired, flushed, or deleted by a takeover): rehydrate them. */
  missing: PresenceRecord[];
  /** Entries another connection owns now. */
  lost: PresenceRecord[];
}

/**
 * identity → owner, with fencing: every write that could undo someone else's claim runs as a
 * Lua script comparing (node, epoch). Each node also indexes its own identities in
 * `{n:<node>}:owned`, so listing never scans the keyspace (a Redis Cluster would need one SCAN
 * per master); the index is a hint, every listed entry is checked against its presence hash.
 */
export class PresenceStore {
  private readonly keys: RedisKeys;
  private readonly pool: RedisConnectionPool;
  private readonly ttlMs: number;
  /** Claims of one event-loop turn (a connection storm) go to Redis as one script call per slot group. */
  private readonly claims = new TickBatcher<ClaimRequest, ClaimResult>((requests) => this.claimBatch(requests));

  constructor(options: PresenceStoreOptions) {
    this.keys = options.keys;
    this.pool = options.pool;
    this.ttlMs = options.presenceTtlMs;
  }

  /** The epoch counter outlives the entry so that a quick reconnect still gets a higher epoch. */
  private get counterTtlMs(): number {
    return this.ttlMs * 2;
  }

  private clientFor(key: string): RedisClient {
    return this.pool.pick(key);
  }

  /** Claims `identity` for `nodeId` with a new, higher epoch. `previous` is the raw entry it replaced. */
  async claim(identity: string, nodeId: string, protocol: OcppProtocol, connectedAt: number): Promise<ClaimResult> {
    // Validated here, so that a bad identity or node id fails alone instead of failing its batch.
    this.keys.nodeId(nodeId);
    const key = this.keys.presence(identity);
    const epochKey = this.keys.presenceEpoch(identity);
    return this.claims.add({ identity, nodeId, protocol, connectedAt, key, epochKey });
  }

  private async claimBatch(requests: ClaimRequest[]): Promise<Array<ClaimResult | Error>> {
    const outcomes = new Map<ClaimRequest, ClaimResult | Error>();
    await this.forEachScriptGroup(
      requests,
      (request) => request.key,
      (group) => ({
        script: PRESENCE_CLAIM,
        keys: group.flatMap((request) => [request.key, request.epochKey]),
        args: [this.ttlMs, this.counterTtlMs, ...group.flatMap((request) => [request.nodeId, request.protocol, request.connectedAt])],
      }),
      (group, error, reply) =>
        group.forEach((request, index) => {
          if (error) {
            outcomes.set(request, error);
            return;
          }
          const fields = reply.slice(index * 5, index * 5 + 5);
          const { identity, nodeId, protocol, connectedAt } = request;
          const record: PresenceRecord = { identity, nodeId, epoch: Number(fields[0]), protocol, connectedAt };
          outcomes.set(request, { record, previous: toRecord(identity, fields.slice(1)) });
        }),
    );
    const claimedBy = new Map<string, string[]>();
    for (const [request, outcome] of outcomes) {
      if (outcome instanceof Error) continue;
      const identities = claimedBy.get(request.nodeId);
      if (identities) identities.push(request.identity);
      else claimedBy.set(request.nodeId, [request.identity]);
    }
    for (const [nodeId, identities] of claimedBy) await this.addOwned(nodeId, identities);
    return requests.map((request) => outcomes.get(request) ?? new Error(`no reply for the claim of ${request.identity}`));
  }

  /** The entry as stored (the caller decides whether its node is alive). */
  async get(identity: string): Promise<PresenceRecord | null> {
    const key = this.keys.presence(identity);
    const fields = await this.clientFor(key).hmget(key, 'node', 'epoch', 'protocol', 'connectedAt');
    return toRecord(identity, fields);
  }

  /**
   * Entries of many identities: one read script per 200 identities (per slot on Redis Cluster,
   * never a cross-slot call), pipelined per master.
   */
  async getBatch(identities: readonly string[]): Promise<Map<string, PresenceRecord>> {
    const found = new Map<string, PresenceRecord>();
    await this.forEachScriptGroup(
      [...new Set(identities)],
      (identity) => this.keys.presence(identity),
      (group) => ({ script: PRESENCE_READ, keys: group.map((identity) => this.keys.presence(identity)), args: [] }),
      (group, error, reply) => {
        if (error) throw error;
        group.forEach((identity, index) => {
          const record = toRecord(identity, reply.slice(index * 4, index * 4 + 4));
          if (record) found.set(identity, record);
        });
      },
    );
    return found;
  }

  /** Removes the entry only while (`nodeId`, `epoch`) still own it. */
  async remove(identity: string, nodeId: string, epoch: number): Promise<boolean> {
    const key = this.keys.presence(identity);
    const removed = (await PRESENCE_REMOVE_IF_OWNER.run(this.clientFor(key), [key], [nodeId, epoch])) === 1;
    if (removed) await this.clientFor(this.keys.owned(nodeId)).srem(this.keys.owned(nodeId), identity);
    return removed;
  }

  /** Extends the TTL of the given local connections where they still own their entry. */
  async refresh(records: readonly PresenceRecord[], nodeId: string): Promise<RefreshResult> {
    const result: RefreshResult = { refreshed: 0, missing: [], lost: [] };
    const withEpoch = records.filter((record) => record.epoch > 0);
    await this.forEachScriptGroup(
      withEpoch,
      (record) => this.keys.presence(record.identity),
      (group) => ({
        script: PRESENCE_REFRESH_IF_OWNER,
        keys: group.map((record) => this.keys.presence(record.identity)),
        args: [nodeId, this.ttlMs, ...group.map((record) => record.epoch)],
      }),
      (group, error, reply) => {
        if (error) throw error;
        group.forEach((record, index) => {
          const code = Number(reply[index]);
          if (code === 1) result.refreshed++;
          else if (code === -1) result.missing.push(record);
          else result.lost.push(record);
        });
      },
    );
    if (result.lost.length > 0) await this.forget(nodeId, result.lost.map((record) => record.identity));
    return result;
  }

  /**
   * Re-registers local connections after Redis lost (or expired) their entries, never over a
   * newer owner. A record with epoch 0 (its claim failed) gets a fresh epoch unless a connection
   * that started later owns the identity.
   */
  async rehydrate(records: readonly PresenceRecord[], nodeId: string): Promise<RehydrateResult[]> {
    const results: RehydrateResult[] = [];
    await this.forEachScriptGroup(
      records,
      (record) => this.keys.presence(record.identity),
      (group) => ({
        script: PRESENCE_REHYDRATE,
        keys: group.flatMap((record) => [this.keys.presence(record.identity), this.keys.presenceEpoch(record.identity)]),
        args: [nodeId, this.ttlMs, this.counterTtlMs, ...group.flatMap((record) => [record.epoch, record.protocol, record.connectedAt])],
      }),
      (group, error, reply) => {
        if (error) throw error;
        group.forEach((record, index) => results.push(rehydrateResultOf(record, nodeId, reply.slice(index * 6, index * 6 + 6))));
      },
    );
    const held = results.filter((result) => result.status !== 'refused').map((result) => result.record.identity);
    const refused = results.filter((result) => result.status === 'refused').map((result) => result.record.identity);
    await this.addOwned(nodeId, held);
    if (refused.length > 0) await this.forget(nodeId, refused);
    return results;
  }

  /** Adds identities to `nodeId`'s owned index. */
  private async addOwned(nodeId: string, identities: readonly string[]): Promise<void> {
    const owned = this.keys.owned(nodeId);
    for (let i = 0; i < identities.length; i += BATCH_SIZE) {
      await this.clientFor(owned).sadd(owned, ...identities.slice(i, i + BATCH_SIZE));
    }
  }

  /** Identities in `nodeId`'s owned index (a hint: check them with {@link getBatch}). */
  async ownedIdentities(nodeId: string): Promise<string[]> {
    const key = this.keys.owned(nodeId);
    const client = this.clientFor(key);
    const identities = new Set<string>();
    let cursor = '0';
    // SSCAN keeps a big fleet from blocking Redis the way one SMEMBERS of 50k members would.
    do {
      const [next, members] = await client.sscan(key, cursor, 'COUNT', 1000);
      for (const member of members) identities.add(member);
      cursor = next;
    } while (cursor !== '0');
    return [...identities];
  }

  /** Entries that `nodeId` owns now, according to the presence hashes. */
  async listOwned(nodeId: string): Promise<PresenceRecord[]> {
    const records = await this.getBatch(await this.ownedIdentities(nodeId));
    return [...records.values()].filter((record) => record.nodeId === nodeId);
  }

  /** Drops identities from `nodeId`'s owned index. */
  async forget(nodeId: string, identities: readonly string[]): Promise<void> {
    const owned = this.keys.owned(nodeId);
    for (let i = 0; i < identities.length; i += BATCH_SIZE) {
      await this.clientFor(owned).srem(owned, ...identities.slice(i, i + BATCH_SIZE));
    }
  }

  /**
   * Runs a batched script over many items: one call per group of items whose keys may share a
   * call (see {@link scriptGroups}), the calls pipelined by {@link forEachBatch}. Items of one
   * group also share a pool member, the one each of them would use alone, so that the writes of
   * one identity keep their order. `onReply` gets each group's flat reply, or its error.
   */
  private async forEachScriptGroup<T>(
    items: readonly T[],
    keyOf: (item: T) => string,
    callOf: (group: T[]) => ScriptCall,
    onReply: (group: T[], error: Error | null, reply: unknown[]) => void,
  ): Promise<void> {
    if (items.length === 0) return;
    const byMember = this.pool.size === 1 ? [items] : groupBy(items, (item) => this.pool.indexOf(keyOf(item)));
    await Promise.all(
      byMember.map(async (memberItems) => {
        const groups = scriptGroups(this.clientFor(keyOf(memberItems[0])), memberItems, keyOf);
        const calls = new Map(groups.map((group) => [group, callOf(group)]));
        await this.forEachBatch(groups, (group) => keyOf(group[0]), async (client, batch) => {
          const replies = await runPipelined(client, batch.map((group) => calls.get(group)!));
          batch.forEach((group, index) => onReply(group, replies[index].error, (replies[index].result as unknown[]) ?? []));
        });
      }),
    );
  }

  /**
   * Splits items into pipelines and runs a few at a time: on a standalone server plain
   * chunks; on Redis Cluster one group per master, from the client's slot map (a pipeline
   * must stay on one node). When the map changed between grouping and sending (a failover
   * or a migration right then), ioredis refuses the pipeline and that batch is sent again
   * split per slot.
   */
  private async forEachBatch<T>(
    items: readonly T[],
    keyOf: (item: T) => string,
    run: (client: RedisClient, batch: T[]) => Promise<void>,
  ): Promise<void> {
    if (items.length === 0) return;
    const client = this.clientFor(keyOf(items[0]));
    const batches: T[][] = [];
    for (const group of groupByNode(client, items, keyOf)) {
      for (let i = 0; i < group.length; i += BATCH_SIZE) batches.push(group.slice(i, i + BATCH_SIZE));
    }
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < batches.length) {
        const batch = batches[next++];
        try {
          await run(client, batch);
        } catch (error) {
          if (!isCrossNodePipeline(error)) throw error;
          for (const slotBatch of groupBySlot(batch, keyOf).values()) await run(client, slotBatch);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(BATCH_CONCURRENCY, batches.length) }, worker));
  }
}

/**
 * Items that one batched script call may carry: on a standalone server any, on Redis Cluster
 * only those whose keys hash to one slot; at most {@link IDENTITIES_PER_SCRIPT} a call.
 */
function scriptGroups<T>(client: RedisClient, items: readonly T[], keyOf: (item: T) => string): T[][] {
  const sameSlot = client instanceof Cluster ? groupBy(items, (item) => keySlot(keyOf(item))) : [items];
  const groups: T[][] = [];
  for (const group of sameSlot) {
    for (let i = 0; i < group.length; i += IDENTITIES_PER_SCRIPT) groups.push(group.slice(i, i + IDENTITIES_PER_SCRIPT));
  }
  return groups;
}

/** Items grouped by `groupOf`, in input order. */
function groupBy<T, K>(items: readonly T[], groupOf: (item: T) => K): T[][] {
  const groups = new Map<K, T[]>();
  for (const item of items) {
    const key = groupOf(item);
    const group = groups.get(key);
    if (group) group.push(item);
    else groups.set(key, [item]);
  }
  return [...groups.values()];
}

/** What one identity's share of a {@link PRESENCE_REHYDRATE} reply says. */
function rehydrateResultOf(record: PresenceRecord, nodeId: string, fields: readonly unknown[]): RehydrateResult {
  const code = Number(fields[0]);
  const existing = toRecord(record.identity, fields.slice(2));
  const status: RehydrateStatus =
    code === REHYDRATE_KEPT ? 'kept' : code === REHYDRATE_WRITTEN ? 'written' : code === REHYDRATE_DISPLACED ? 'displaced' : 'refused';
  const epoch = code === REHYDRATE_REFUSED ? record.epoch : Number(fields[1]);
  return { record: { ...record, nodeId, epoch }, status, existing };
}

/**
 * Items grouped by the node that serves their key's slot (master and replicas, the way
 * ioredis groups slots), in input order. Slots the map does not know yet get a group each.
 */
function groupByNode<T>(client: RedisClient, items: readonly T[], keyOf: (item: T) => string): T[][] {
  if (!(client instanceof Cluster)) return [items.slice()];
  return groupBy(items, (item) => {
    const slot = keySlot(keyOf(item));
    const nodes = client.slots[slot];
    return nodes && nodes.length > 0 ? nodes.join(';') : `slot:${slot}`;
  });
}

/** ioredis refused a pipeline whose keys it now maps to different nodes. */
function isCrossNodePipeline(error: unknown): boolean {
  return error instanceof Error && error.message.includes('belong to the same slots allocation group');
}

/** A presence record from HMGET-ordered fields (node, epoch, protocol, connectedAt), or null. */
function toRecord(identity: string, fields: readonly unknown[] | null | undefined): PresenceRecord | null {
  if (!fields) return null;
  const [node, epoch, protocol, connectedAt] = fields;
  if (typeof node !== 'string' || node.length === 0) return null;
  const protocolName = typeof protocol === 'string' ? protocol : String(protocol);
  return {
    identity,
    nodeId: node,
    epoch: Number(epoch) || 0,
    protocol: (isOcppProtocol(protocolName) ? protocolName : 'ocpp1.6') as OcppProtocol,
    connectedAt: Number(connectedAt) || 0,
  };
}
