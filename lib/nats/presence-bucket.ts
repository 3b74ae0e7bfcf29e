import type { KV, KvEntry } from '@nats-io/kv';
import type { PresenceRecord } from '../cluster/event-adapter.interface.js';
import type { OcppProtocol } from '../protocol/protocol.js';
import { ClusterUnavailableError } from '../protocol/errors.js';
import { isRevisionConflict } from './nats-errors.js';
import { fromToken, token } from './nats-names.js';

/**
 * What a presence key holds: the owner, or a tombstone (`nodeId: null`) that keeps the epoch so
 * the next claim still gets a higher one (KV deletes would lose it).
 */
interface StoredPresence {
  nodeId: string | null;
  epoch: number;
  protocol?: OcppProtocol;
  connectedAt?: number;
}

/** How many times a compare-and-set is retried when other writers keep changing the key. */
const CAS_ATTEMPTS = 50;
/** Keys read at once by listings and batches. */
const READ_CONCURRENCY = 64;

export type RehydrateStatus = 'kept' | 'restored' | 'displaced' | 'refused';

export interface RehydrateResult {
  record: PresenceRecord;
  status: RehydrateStatus;
  /** The owner found in the store (a newer one when refused, the displaced one when displaced). */
  existing: PresenceRecord | null;
}

/**
 * Above the stored epoch, and at least the time in microseconds (as Redis takes its server TIME):
 * after NATS lost the bucket, a connection made after the loss still outranks an older socket
 * that is re-registered later (clocks of the nodes assumed within a few ms of each other).
 */
function nextEpoch(stored: StoredPresence | null): number {
  return Math.max((stored?.epoch ?? 0) + 1, Date.now() * 1000);
}

function decode(identity: string, entry: KvEntry | null): { stored: StoredPresence | null; revision: number } {
  if (!entry) return { stored: null, revision: 0 };
  if (entry.operation !== 'PUT') return { stored: null, revision: entry.revision };
  try {
    const stored = entry.json<StoredPresence>();
    return { stored: stored && typeof stored.epoch === 'number' ? stored : null, revision: entry.revision };
  } catch {
    return { stored: null, revision: entry.revision };
  }
}

function asRecord(identity: string, stored: StoredPresence | null): PresenceRecord | null {
  if (!stored || stored.nodeId === null) return null;
  return { identity, nodeId: stored.nodeId, epoch: stored.epoch, protocol: stored.protocol!, connectedAt: stored.connectedAt ?? 0 };
}

/**
 * identity → owner in a KV bucket. Every change is a compare-and-set on the key's revision
 * (`create` when absent, `update` with the revision read), so two nodes claiming at once never
 * both win: the loser reads again and claims above the winner's epoch (newest connection wins).
 */
export class PresenceBucket {
  constructor(
    private readonly kv: () => KV,
    /** Whether a write we made may still be overtaken by one made on the same revision (see casMayBeOvertaken). */
    private readonly writesMayBeOvertaken: () => boolean = () => false,
  ) {}

  async claim(identity: string, nodeId: string, protocol: OcppProtocol, connectedAt: number): Promise<{ record: PresenceRecord; previous: PresenceRecord | null }> {
    const key = token(identity);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const { stored, revision } = decode(identity, await this.kv().get(key));
      const record: PresenceRecord = { identity, nodeId, epoch: nextEpoch(stored), protocol, connectedAt };
      if (await this.writeOwner(key, record, revision)) return { record, previous: asRecord(identity, stored) };
    }
    throw new ClusterUnavailableError(`presence of ${identity} kept changing; claim not written`);
  }

  async get(identity: string): Promise<PresenceRecord | null> {
    return asRecord(identity, decode(identity, await this.kv().get(token(identity))).stored);
  }

  async getBatch(identities: readonly string[]): Promise<Map<string, PresenceRecord>> {
    const found = new Map<string, PresenceRecord>();
    const unique = [...new Set(identities)];
    for (let i = 0; i < unique.length; i += READ_CONCURRENCY) {
      const slice = unique.slice(i, i + READ_CONCURRENCY);
      const records = await Promise.all(slice.map((identity) => this.get(identity)));
      records.forEach((record, index) => record && found.set(slice[index]!, record));
    }
    return found;
  }

  /** Tombstones the entry only while `nodeId` owns it at `epoch`. */
  async remove(identity: string, nodeId: string, epoch: number): Promise<boolean> {
    const key = token(identity);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const { stored, revision } = decode(identity, await this.kv().get(key));
      if (!stored || stored.nodeId !== nodeId || stored.epoch !== epoch) return false;
      if ((await this.writeStored(key, { nodeId: null, epoch }, revision)) !== null) return true;
    }
    return false;
  }

  /**
   * Gives up `nodeId`'s claim at `epoch` (its handshake never opened) while it still owns the
   * entry: `displaced`, the owner the claim replaced, gets the identity back; without one the entry
   * is tombstoned. A tombstone over a displaced owner would leave its open socket unlisted, and
   * nothing writes a NATS entry back by itself: every other node would answer NotConnected for it.
   */
  async release(identity: string, nodeId: string, epoch: number, displaced: PresenceRecord | null): Promise<boolean> {
    const key = token(identity);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const { stored, revision } = decode(identity, await this.kv().get(key));
      if (!stored || stored.nodeId !== nodeId || stored.epoch !== epoch) return false;
      const written = displaced ? await this.writeOwner(key, displaced, revision) : (await this.writeStored(key, { nodeId: null, epoch }, revision)) !== null;
      if (written) return true;
    }
    return false;
  }

  /** Every owner in the bucket (dead nodes' entries included; the caller filters). */
  async list(): Promise<PresenceRecord[]> {
    const keys: string[] = [];
    for await (const key of await this.kv().keys()) keys.push(key);
    const records: PresenceRecord[] = [];
    for (let i = 0; i < keys.length; i += READ_CONCURRENCY) {
      const slice = keys.slice(i, i + READ_CONCURRENCY);
      const entries = await Promise.all(slice.map((key) => this.kv().get(key)));
      entries.forEach((entry, index) => {
        const identity = fromToken(slice[index]!);
        const record = asRecord(identity, decode(identity, entry).stored);
        if (record) records.push(record);
      });
    }
    return records;
  }

  async listOwned(nodeId: string): Promise<PresenceRecord[]> {
    return (await this.list()).filter((record) => record.nodeId === nodeId);
  }

  /**
   * Registers a local socket again (after NATS lost entries, or a claim that failed): written when
   * the key is absent, a tombstone, ours, or an older epoch; refused when a newer owner exists.
   */
  async rehydrate(record: PresenceRecord): Promise<RehydrateResult> {
    const key = token(record.identity);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const { stored, revision } = decode(record.identity, await this.kv().get(key));
      const existing = asRecord(record.identity, stored);
      if (existing && existing.nodeId === record.nodeId && existing.epoch === record.epoch) return { record, status: 'kept', existing };
      // A newer connection claimed it since (it may have closed again): our socket is stale.
      if (stored && stored.epoch > record.epoch && record.epoch > 0) return { record, status: 'refused', existing };
      // A socket accepted while NATS refused writes (epoch 0) gets a fresh epoch now.
      const written = record.epoch > 0 ? record : { ...record, epoch: nextEpoch(stored) };
      if (await this.writeOwner(key, written, revision)) return { record: written, status: existing ? 'displaced' : 'restored', existing };
    }
    throw new ClusterUnavailableError(`presence of ${record.identity} kept changing; not re-registered`);
  }

  /**
   * Writes an owner (compare-and-set on `revision`) and makes it final. Where a write read at the
   * same revision as ours is accepted too (see casMayBeOvertaken: typically the old owner's removal
   * as the charge point moves to us), it may land after ours and leave a tombstone or an older owner
   * over our open socket, and nothing writes it back. A second compare-and-set on our own revision
   * is proposed after every such write, so it lands last; if one landed first, ours goes back over
   * anything older than our epoch.
   */
  private async writeOwner(key: string, record: PresenceRecord, revision: number): Promise<boolean> {
    const stored: StoredPresence = { nodeId: record.nodeId, epoch: record.epoch, protocol: record.protocol, connectedAt: record.connectedAt };
    let at = await this.writeStored(key, stored, revision);
    if (at === null) return false;
    if (!this.writesMayBeOvertaken()) return true;
    let confirming = true;
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const next = await this.writeStored(key, stored, at);
      if (next !== null) {
        if (confirming) return true;
        // Ours again over a stale write: confirmed like the first.
        at = next;
        confirming = true;
        continue;
      }
      const { stored: now, revision: nowRevision } = decode(record.identity, await this.kv().get(key));
      // Our own removal (a tombstone at our epoch) or a newer connection: not ours to undo.
      if (now && now.epoch >= record.epoch) return true;
      at = nowRevision;
      confirming = false;
    }
    throw new ClusterUnavailableError(`presence of ${record.identity} kept changing; claim not confirmed`);
  }

  /** Compare-and-set: the new revision, or null when the key changed since `revision` (0: when it appeared). */
  private async writeStored(key: string, stored: StoredPresence, revision: number): Promise<number | null> {
    try {
      if (revision === 0) return await this.kv().create(key, JSON.stringify(stored));
      return await this.kv().update(key, JSON.stringify(stored), revision);
    } catch (error) {
      if (isRevisionConflict(error)) return null;
      throw error;
    }
  }
}

