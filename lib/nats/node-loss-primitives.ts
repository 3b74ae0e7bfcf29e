import type { JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { LostNodeClaim, NodeLossPrimitives } from '../cluster/event-adapter.interface.js';
import { isConsumerNotFound, isRevisionConflict, isStreamNotFound } from './nats-errors.js';
import { fromToken, READER, token, type NatsNames } from './nats-names.js';
import { NatsLostNodeClaim } from './lost-node-claim.js';
import { parseNodeRecord, type NatsNodeLiveness, type NodeRecord } from './node-liveness.js';
import type { PresenceBucket } from './presence-bucket.js';

export interface NatsNodeLossOptions {
  names: NatsNames;
  selfId: string;
  nodesKv: () => KV;
  jsm: () => JetStreamManager;
  liveness: NatsNodeLiveness;
  presence: PresenceBucket;
  /** Messages handed out per next(). */
  batchSize: number;
}

/**
 * What NATS offers the cluster's node-loss handling (cluster/node-loss.ts). The nodes bucket is the
 * registry; a node is lost when its record is `alive` but silent for its TTL (see
 * NatsNodeLiveness), `left` with messages still waiting, or `taken-over` by a survivor that died
 * before it was done. Nothing counts as lost while this node cannot judge (its own lease unproven,
 * its heartbeats not answered steadily for a whole TTL).
 *
 * Claiming is one compare-and-set of the lost node's record to `taken-over` by this node, on the
 * very revision judged silent: it is the lock (one survivor wins) and the fence (a heartbeat of
 * the lost node after it fails, and tells it it was taken over). Then the claim records how far
 * the lost node's consumer had read, deletes that consumer (a woken process can read or ack
 * nothing more) and moves the inbox's subject away (senders get an error at once).
 */
export class NatsNodeLoss implements NodeLossPrimitives {
  /** Nodes this process holds a claim on (a claim given up unfinished is taken again). */
  private readonly claimed = new Set<string>();

  constructor(private readonly options: NatsNodeLossOptions) {}

  async lostNodes(): Promise<string[]> {
    const { liveness, selfId } = this.options;
    const lost: string[] = [];
    for (const key of await this.nodeKeys()) {
      const nodeId = fromToken(key);
      if (nodeId === selfId) continue;
      const entry = await this.options.nodesKv().get(key);
      // Judged on every pass, so a dead node's silence is measured from our first sight of it.
      if (liveness.judge(nodeId, entry)) continue;
      const record = parseNodeRecord(entry);
      if (record && liveness.isSteady() && liveness.hasLease() && (await this.isLost(nodeId, record))) lost.push(nodeId);
    }
    return lost;
  }

  /** Every node whose record is alive now (this one included while it holds its lease). */
  async liveNodes(): Promise<string[]> {
    const { liveness, selfId } = this.options;
    const alive: string[] = [];
    for (const key of await this.nodeKeys()) {
      const nodeId = fromToken(key);
      if (nodeId === selfId ? liveness.isHeld : liveness.judge(nodeId, await this.options.nodesKv().get(key))) alive.push(nodeId);
    }
    return alive;
  }

  async claimLostNode(nodeId: string): Promise<LostNodeClaim | null> {
    const { names, selfId, liveness } = this.options;
    const kv = this.options.nodesKv();
    const entry = await kv.get(token(nodeId));
    const record = parseNodeRecord(entry);
    if (!entry || !record || liveness.judge(nodeId, entry) || !liveness.hasLease() || !(await this.isLost(nodeId, record))) return null;
    const fence: NodeRecord = { ...record, state: 'taken-over', by: selfId, done: false };
    let revision: number;
    try {
      revision = await kv.update(entry.key, JSON.stringify(fence), entry.revision);
    } catch (error) {
      if (isRevisionConflict(error)) return null;
      throw error;
    }
    this.claimed.add(nodeId);
    const claim = new NatsLostNodeClaim(nodeId, { ...this.options, key: entry.key, fence, revision, onRelease: () => this.claimed.delete(nodeId) });
    try {
      const deliveredSeq = Math.max(fence.deliveredSeq ?? 0, await this.retireConsumer(names.inboxStream(nodeId)));
      if (!(await claim.rewriteFence({ deliveredSeq }))) {
        await claim.release();
        return null;
      }
      await this.retireConsumer(names.repliesStream(nodeId));
      await this.closeInbox(nodeId);
      return claim;
    } catch (error) {
      await claim.release();
      throw error;
    }
  }

  private async isLost(nodeId: string, record: NodeRecord): Promise<boolean> {
    if (record.state === 'alive' || record.state === 'left') return true;
    if (record.done || record.by === undefined) return false;
    // A takeover that was given up unfinished (ours) or whose survivor died.
    if (record.by === this.options.selfId) return !this.claimed.has(nodeId);
    return !(await this.options.liveness.isAliveNow(record.by));
  }

  /**
   * Keys of the nodes bucket in one request (the stream's subjects; deleted keys included, their
   * records read as absent): a KV key listing would run a consumer that a busy bucket keeps going.
   */
  private async nodeKeys(): Promise<string[]> {
    const bucket = this.options.names.nodesBucket;
    const prefix = `$KV.${bucket}.`;
    const info = await this.options.jsm().streams.info(`KV_${bucket}`, { subjects_filter: `${prefix}>` });
    return Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(prefix.length));
  }

  /** How far the consumer had read; deletes it (0 when there is none). */
  private async retireConsumer(stream: string): Promise<number> {
    const jsm = this.options.jsm();
    try {
      const info = await jsm.consumers.info(stream, READER);
      await jsm.consumers.delete(stream, READER);
      return info.delivered.stream_seq;
    } catch (error) {
      if (isConsumerNotFound(error) || isStreamNotFound(error)) return 0;
      throw error;
    }
  }

  /** Moves the inbox's subject away: publishes to the lost node fail at once from now on. */
  private async closeInbox(nodeId: string): Promise<void> {
    const { names } = this.options;
    try {
      await this.options.jsm().streams.update(names.inboxStream(nodeId), { subjects: [`${names.inboxSubject(nodeId)}.closed`] });
    } catch (error) {
      if (!isStreamNotFound(error)) throw error;
    }
  }
}
