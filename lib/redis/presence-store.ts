import { Cluster } from 'ioredis';
import type { PresenceRecord } from '../cluster/event-adapter.interface.js';
import { groupBy } from '../cluster/group-by.js';
import { isOcppProtocol, type OcppProtocol } from '../protocol/protocol.js';
import {
  PRESENCE_CLAIM,
  PRESENCE_READ,
  PRESENCE_REFRESH_IF_OWNER,
  PRESENCE_REHYDRATE,
  PRESENCE_RELEASE_CLAIM,
  PRESENCE_REMOVE_IF_OWNER,
  REHYDRATE_DISPLACED,
  REHYDRATE_KEPT,
  REHYDRATE_REFUSED,
  REHYDRATE_WRITTEN,
  MEMBERSHIP_SADD,
  runPipelined,
  type ScriptCall,
} from './lua-scripts.js';
import { OwnedIndexUpdates, ownedChangesOf, type LastOwnedWrites, type OwnedChanges } from './owned-index-updates.js';
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
  kind: 'claim';
  identity: string;
  nodeId: string;
  protocol: OcppProtocol;
  connectedAt: number;
  key: string;
  epochKey: string;
}

interface RemoveRequest {
  kind: 'remove';
  identity: string;
  nodeId: string;
  epoch: number;
  key: string;
}

/** A presence write of one event-loop turn; claims and removals share a batch to keep their order. */
type WriteRequest = ClaimRequest | RemoveRequest;
type WriteOutcome = ClaimResult | boolean;

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
  /**
   * Claims and removals of one event-loop turn (a connection or disconnect storm) go to Redis as
   * one script call per slot group and kind, in the order they were made.
   */
  private readonly writes = new TickBatcher<WriteRequest, WriteOutcome>((requests) => this.writeBatch(requests));
  /** The write batches' owned-index updates, in batch order (see {@link writeBatch}). */
  private readonly ownedUpdates = new OwnedIndexUpdates((changes) => this.updateOwned(changes));

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
    return this.writes.add({ kind: 'claim', identity, nodeId, protocol, connectedAt, key, epochKey }) as Promise<ClaimResult>;
  }

  /**
   * Runs one turn's claims and removals. Writes of one identity share a pool member and keep
   * their order within a script group, so the presence hashes end as if each ran alone. The
   * owned index lives in another slot, so it is updated afterwards (see {@link ownedChanges}),
   * in batch order, so that an earlier batch's update never lands after a later one's (batches
   * ready together share one update: see OwnedIndexUpdates).
   */
  private async writeBatch(requests: WriteRequest[]): Promise<Array<WriteOutcome | Error>> {
    const turn = this.ownedUpdates.take();
    const outcomes = new Map<WriteRequest, WriteOutcome | Error>();
    try {
      await this.forEachScriptGroup(
        requests,
        (request) => request.key,
        (group) => (group[0].kind === 'claim' ? this.claimCall(group as ClaimRequest[]) : removeCall(group as RemoveRequest[])),
        (group, error, reply) =>
          group.forEach((request, index) => outcomes.set(request, error ?? writeOutcomeOf(request, index, reply))),
        (request) => request.kind,
      );
    } catch (error) {
      turn.skip();
      throw error;
    }
    await turn.apply(ownedChanges(requests, outcomes));
    return requests.map((request) => outcomes.get(request) ?? new Error(`no reply for the ${request.kind} of ${request.identity}`));
  }

  private claimCall(group: readonly ClaimRequest[]): ScriptCall {
    return {
      script: PRESENCE_CLAIM,
      keys: group.flatMap((request) => [request.key, request.epochKey]),
      args: [this.ttlMs, this.counterTtlMs, ...group.flatMap((request) => [request.nodeId, request.protocol, request.connectedAt])],
    };
  }

  /** Applies a batch's owned-index changes: per node one SADD and one SREM per {@link BATCH_SIZE} identities. */
  private async updateOwned(changes: Map<string, OwnedChanges>): Promise<void> {
    for (const [nodeId, { added, dropped }] of changes) {
      await Promise.all([this.addOwned(nodeId, added), this.forget(nodeId, dropped)]);
    }
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

  /**
   * Removes the entry only while (`nodeId`, `epoch`) still own it. Removals of one turn (a
   * drain, a network blip closing thousands of sockets) share script calls with that turn's claims.
   */
  async remove(identity: string, nodeId: string, epoch: number): Promise<boolean> {
    // Validated here, so that a bad identity or node id fails alone instead of failing its batch.
    this.keys.nodeId(nodeId);
    const key = this.keys.presence(identity);
    return this.writes.add({ kind: 'remove', identity, nodeId, epoch, key }) as Promise<boolean>;
  }

  /**
   * Gives up `nodeId`'s claim at `epoch` (its handshake never opened) while it still owns the
   * entry: `displaced`, the live owner the claim replaced, gets the identity back, or the entry
   * goes when there was none. Deleting it instead would leave that owner's open socket with no
   * entry, and every other node would answer NotConnected for it until its next refresh.
   */
  async releaseClaim(identity: string, nodeId: string, epoch: number, displaced: PresenceRecord | null): Promise<boolean> {
    this.keys.nodeId(nodeId);
    const key = this.keys.presence(identity);
    const restore = displaced ? [displaced.nodeId, displaced.epoch, displaced.protocol, displaced.connectedAt] : ['', 0, '', 0];
    const outcome = Number(await PRESENCE_RELEASE_CLAIM.run(this.clientFor(key), [key], [nodeId, epoch, this.ttlMs, ...restore]));
    if (outcome === 0) return false;
    if (displaced?.nodeId !== nodeId) await this.forget(nodeId, [identity]);
    if (displaced) await this.addOwned(displaced.nodeId, [identity]);
    return true;
  }

  /** remove() for each record, issued together so they share batched script calls. Returns how many went. */
  async removeMany(records: readonly PresenceRecord[], nodeId: string): Promise<number> {
    const outcomes = await Promise.all(records.map((record) => this.remove(record.identity, nodeId, record.epoch)));
    return outcomes.filter(Boolean).length;
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
    // A newer connection of ours may hold a refused identity: it stays in our index then.
    const refused = results
      .filter((result) => result.status === 'refused' && result.existing?.nodeId !== nodeId)
      .map((result) => result.record.identity);
    await this.addOwned(nodeId, held);
    if (refused.length > 0) await this.forget(nodeId, refused);
    return results;
  }

  /** Adds identities to `nodeId`'s owned index. */
  private async addOwned(nodeId: string, identities: readonly string[]): Promise<void> {
    const owned = this.keys.owned(nodeId);
    for (let i = 0; i < identities.length; i += BATCH_SIZE) {
      await MEMBERSHIP_SADD.run(this.clientFor(owned), [owned], identities.slice(i, i + BATCH_SIZE));
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
   * one identity keep their order. With `kindOf`, a group holds consecutive items of one kind
   * only (one script each). `onReply` gets each group's flat reply, or its error.
   */
  private async forEachScriptGroup<T>(
    items: readonly T[],
    keyOf: (item: T) => string,
    callOf: (group: T[]) => ScriptCall,
    onReply: (group: T[], error: Error | null, reply: unknown[]) => void,
    kindOf?: (item: T) => string,
  ): Promise<void> {
    if (items.length === 0) return;
    const byMember = groupBy(items, (item) => this.pool.indexOf(keyOf(item)));
    await Promise.all(
      [...byMember.values()].map(async (memberItems) => {
        const groups = scriptGroups(this.clientFor(keyOf(memberItems[0])), memberItems, keyOf, kindOf);
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
 * only those whose keys hash to one slot; with `kindOf`, only a run of consecutive items of one
 * kind; at most {@link IDENTITIES_PER_SCRIPT} a call. Groups of one slot keep the items' order.
 */
function scriptGroups<T>(
  client: RedisClient,
  items: readonly T[],
  keyOf: (item: T) => string,
  kindOf?: (item: T) => string,
): T[][] {
  const sameSlot = client instanceof Cluster ? groupBySlot(items, keyOf).values() : [items];
  const groups: T[][] = [];
  for (const slotItems of sameSlot) {
    for (const run of kindOf ? runsOf(slotItems, kindOf) : [slotItems]) {
      for (let i = 0; i < run.length; i += IDENTITIES_PER_SCRIPT) groups.push(run.slice(i, i + IDENTITIES_PER_SCRIPT));
    }
  }
  return groups;
}

/** Items split where their kind changes, in order. */
function runsOf<T>(items: readonly T[], kindOf: (item: T) => string): T[][] {
  const runs: T[][] = [];
  let previousKind: string | undefined;
  for (const item of items) {
    const kind = kindOf(item);
    if (runs.length > 0 && kind === previousKind) runs[runs.length - 1].push(item);
    else runs.push([item]);
    previousKind = kind;
  }
  return runs;
}

function removeCall(group: readonly RemoveRequest[]): ScriptCall {
  return {
    script: PRESENCE_REMOVE_IF_OWNER,
    keys: group.map((request) => request.key),
    args: group.flatMap((request) => [request.nodeId, request.epoch]),
  };
}

/** What one request's share of its group's reply says: a claim's result, or whether a removal removed. */
function writeOutcomeOf(request: WriteRequest, index: number, reply: readonly unknown[]): WriteOutcome {
  if (request.kind === 'remove') return Number(reply[index]) === 1;
  const fields = reply.slice(index * 5, index * 5 + 5);
  const { identity, nodeId, protocol, connectedAt } = request;
  const record: PresenceRecord = { identity, nodeId, epoch: Number(fields[0]), protocol, connectedAt };
  return { record, previous: toRecord(identity, fields.slice(1)) };
}

/**
 * Per node, the owned-index changes of a batch: an identity the node claimed is added; one it
 * only removed is dropped. A removal that shares a batch with a claim of the same identity
 * always names an older epoch (a removal's epoch comes from a claim that has already been
 * answered), so the claim decides, whichever of the two Redis ran first.
 */
function ownedChanges(requests: readonly WriteRequest[], outcomes: Map<WriteRequest, WriteOutcome | Error>): Map<string, OwnedChanges> {
  const lastWrite: LastOwnedWrites = new Map();
  for (const request of requests) {
    const outcome = outcomes.get(request);
    if (outcome === undefined || outcome instanceof Error || outcome === false) continue;
    let byIdentity = lastWrite.get(request.nodeId);
    if (!byIdentity) lastWrite.set(request.nodeId, (byIdentity = new Map()));
    if (request.kind === 'claim') byIdentity.set(request.identity, 'added');
    else if (byIdentity.get(request.identity) !== 'added') byIdentity.set(request.identity, 'dropped');
  }
  return ownedChangesOf(lastWrite);
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
  const byNode = groupBy(items, (item) => {
    const slot = keySlot(keyOf(item));
    const nodes = client.slots[slot];
    return nodes && nodes.length > 0 ? nodes.join(';') : `slot:${slot}`;
  });
  return [...byNode.values()];
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
