import type { JetStreamManager } from '@nats-io/jetstream';
import type { KV, KvEntry } from '@nats-io/kv';
import type { ClusterMessage, CommandEnvelope, CommandOutcome } from '../cluster/envelope.js';
import { forwarded, forwardingTarget, mayForward } from '../cluster/forwarding.js';
import type { ClusterLogger } from '../cluster/logger.js';
import { outcomeFromError } from '../cluster/outcome.js';
import { InboxFullError } from '../protocol/errors.js';
import { decodeNatsMessage } from './message-codec.js';
import { isConsumerNotFound, isRevisionConflict, isStreamNotFound } from './nats-errors.js';
import { fromToken, READER, type NatsNames } from './nats-names.js';
import { parseNodeRecord, type NatsNodeLiveness, type NodeRecord } from './node-liveness.js';
import type { PresenceBucket } from './presence-bucket.js';

export interface NatsTakeoverOptions {
  names: NatsNames;
  selfId: string;
  nodesKv: () => KV;
  jsm: () => JetStreamManager;
  liveness: NatsNodeLiveness;
  presence: PresenceBucket;
  /** The transport's unicast path (commands to inboxes, replies to replies streams). */
  send: (nodeId: string, message: ClusterMessage) => Promise<void>;
  logger: ClusterLogger;
  /** How often the nodes bucket is checked for dead nodes (default 1000 ms). */
  intervalMs?: number;
  /** Messages handled between two checks that the fence is still ours (default 100). */
  batchSize?: number;
}

export interface NatsTakeoverReport {
  nodeId: string;
  forwarded: number;
  answered: number;
  dropped: number;
  presenceRemoved: number;
  completed: boolean;
}

/**
 * Node loss on NATS. Every survivor reads the nodes bucket about once a second; a node judged
 * dead (see {@link NatsNodeLiveness}), or one that left with messages still in its inbox, is
 * fenced by ONE survivor with a compare-and-set of its record to `taken-over` (the record is the
 * lock: a heartbeat or another survivor that wrote first makes it fail). Then the survivor:
 *
 * 1. records how far the dead node's consumer had read (`deliveredSeq`) and deletes that consumer,
 *    so the dead process, should it wake, can neither read nor acknowledge anything more;
 * 2. closes the inbox to new messages (its subject is moved away: a sender gets an error at once
 *    instead of a message nobody reads);
 * 3. handles every message left, in order, deleting each once handled: a command the dead node had
 *    read (sequence ≤ deliveredSeq) may have reached the charge point and is answered, never
 *    re-sent; one it never read is forwarded to the live node that owns its charge point now
 *    (cluster/forwarding.ts), otherwise answered `notConnected`; expired commands are answered as
 *    timeouts; replies and evictions for the dead node are dropped;
 * 4. tombstones presence entries that still name the dead node, deletes its streams and marks the
 *    record `done`.
 *
 * Before every batch it checks that the record is still its own fence (a node that came back
 * rewrote it) and stops otherwise. A survivor that dies midway is replaced: a `taken-over` record
 * that is not `done` and whose survivor is dead is fenced again by another.
 */
export class NatsTakeover {
  private readonly intervalMs: number;
  private readonly batchSize: number;
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private scanning: Promise<NatsTakeoverReport[]> | null = null;
  private rescan = false;
  takeovers = 0;
  forwarded = 0;
  answered = 0;
  dropped = 0;
  failures = 0;

  constructor(private readonly options: NatsTakeoverOptions) {
    this.intervalMs = options.intervalMs ?? 1000;
    this.batchSize = options.batchSize ?? 100;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule(this.intervalMs);
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.scanning?.catch(() => undefined);
  }

  poke(): void {
    if (!this.running) return;
    if (this.scanning) {
      this.rescan = true;
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.schedule(0);
  }

  scan(): Promise<NatsTakeoverReport[]> {
    this.scanning ??= this.scanOnce().finally(() => {
      this.scanning = null;
    });
    return this.scanning;
  }

  /**
   * Keys of the nodes bucket, in one request (the stream's subjects; deleted keys included, their
   * records read as absent). A KV key listing would run a consumer that a busy bucket keeps going.
   */
  private async nodeKeys(): Promise<string[]> {
    const bucket = this.options.names.nodesBucket;
    const prefix = `$KV.${bucket}.`;
    const info = await this.options.jsm().streams.info(`KV_${bucket}`, { subjects_filter: `${prefix}>` });
    return Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(prefix.length));
  }

  private async scanOnce(): Promise<NatsTakeoverReport[]> {
    const { liveness, selfId } = this.options;
    const kv = this.options.nodesKv();
    const keys = await this.nodeKeys();
    const reports: NatsTakeoverReport[] = [];
    for (const key of keys) {
      if (!this.running) break;
      const nodeId = fromToken(key);
      if (nodeId === selfId) continue;
      const entry = await kv.get(key);
      // Judged on every pass, so the silence of a dead node is measured from our first sight of it.
      if (liveness.judge(nodeId, entry)) continue;
      if (!liveness.isSteady() || !liveness.hasLease()) continue;
      const record = parseNodeRecord(entry);
      if (!record || !entry || !(await this.needsTakeover(record))) continue;
      const report = await this.takeOver(nodeId, entry, record);
      if (report) reports.push(report);
    }
    return reports;
  }

  private async needsTakeover(record: NodeRecord): Promise<boolean> {
    if (record.state === 'alive' || record.state === 'left') return true;
    // A takeover whose survivor died midway.
    return !record.done && record.by !== undefined && record.by !== this.options.selfId && !(await this.options.liveness.isAliveNow(record.by));
  }

  /** Fences and drains one dead node; null when another survivor or the node itself wrote first. */
  async takeOver(nodeId: string, entry: KvEntry, record: NodeRecord): Promise<NatsTakeoverReport | null> {
    const { logger, names } = this.options;
    const kv = this.options.nodesKv();
    const key = entry.key;
    let fence: NodeRecord = { ...record, state: 'taken-over', by: this.options.selfId, done: false };
    let revision: number;
    try {
      revision = await kv.update(key, JSON.stringify(fence), entry.revision);
    } catch (error) {
      if (isRevisionConflict(error)) return null;
      throw error;
    }
    const report: NatsTakeoverReport = { nodeId, forwarded: 0, answered: 0, dropped: 0, presenceRemoved: 0, completed: false };
    const stillOurs = async (): Promise<boolean> => (await kv.get(key))?.revision === revision && this.options.liveness.hasLease();
    const writeFence = async (next: NodeRecord): Promise<boolean> => {
      try {
        revision = await kv.update(key, JSON.stringify(next), revision);
        fence = next;
        return true;
      } catch (error) {
        if (isRevisionConflict(error)) return false;
        throw error;
      }
    };
    logger.warn(`node ${nodeId} is gone (${record.state === 'left' ? 'left with messages waiting' : 'no heartbeat for its TTL'}); taking over its inbox`);
    try {
      const deliveredSeq = Math.max(fence.deliveredSeq ?? 0, await this.retireConsumer(names.inboxStream(nodeId)));
      if (!(await writeFence({ ...fence, deliveredSeq }))) return report;
      await this.retireConsumer(names.repliesStream(nodeId));
      await this.closeInbox(nodeId);
      if (!(await this.drain(nodeId, deliveredSeq, report, stillOurs))) return report;
      report.presenceRemoved = await this.removeStalePresence(nodeId);
      if (!(await stillOurs())) return report;
      for (const stream of [names.inboxStream(nodeId), names.repliesStream(nodeId)]) {
        await this.options.jsm().streams.delete(stream).catch((error: unknown) => {
          if (!isStreamNotFound(error)) throw error;
        });
      }
      if (!(await writeFence({ ...fence, done: true }))) return report;
      report.completed = true;
      this.takeovers++;
      logger.log(
        `took over node ${nodeId}: ${report.forwarded} forwarded, ${report.answered} answered, ` +
          `${report.dropped} dropped, ${report.presenceRemoved} presence entries removed`,
      );
      return report;
    } catch (error) {
      this.failures++;
      logger.warn(`takeover of node ${nodeId} failed: ${(error as Error).message}`);
      return report;
    }
  }

  /** How far the consumer had read; deletes it (0 and nothing when there is none). */
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

  /** Moves the inbox's subject away: publishes to the dead node fail at once from now on. */
  private async closeInbox(nodeId: string): Promise<void> {
    const { names } = this.options;
    const jsm = this.options.jsm();
    try {
      await jsm.streams.update(names.inboxStream(nodeId), { subjects: [`${names.inboxSubject(nodeId)}.closed`] });
    } catch (error) {
      if (!isStreamNotFound(error)) throw error;
    }
  }

  /** Handles every message left in the inbox. False when the fence stopped being ours. */
  private async drain(nodeId: string, deliveredSeq: number, report: NatsTakeoverReport, stillOurs: () => Promise<boolean>): Promise<boolean> {
    const stream = this.options.names.inboxStream(nodeId);
    const jsm = this.options.jsm();
    let state;
    try {
      state = (await jsm.streams.info(stream)).state;
    } catch (error) {
      if (isStreamNotFound(error)) return true;
      throw error;
    }
    if (state.messages === 0) return true;
    let handled = 0;
    for (let seq = state.first_seq; seq <= state.last_seq; seq++) {
      if (handled++ % this.batchSize === 0 && !(await stillOurs())) return false;
      const stored = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
      if (!stored) continue;
      await this.handle(nodeId, decodeNatsMessage(stored.data), seq <= deliveredSeq, report);
      // One at a time: a failure midway must not make the next survivor answer what was forwarded.
      await jsm.streams.deleteMessage(stream, seq, false).catch(() => undefined);
    }
    return true;
  }

  private async handle(nodeId: string, message: ClusterMessage | null, wasDelivered: boolean, report: NatsTakeoverReport): Promise<void> {
    if (!message || message.kind !== 'command') {
      this.count(report, 'dropped');
      return;
    }
    const { liveness, presence, send, selfId } = this.options;
    if (message.origin === nodeId || !(await liveness.isAlive(message.origin))) {
      this.count(report, 'dropped');
      return;
    }
    const command: CommandEnvelope = message;
    const answer = (outcome: CommandOutcome) => send(command.origin, { kind: 'reply', id: command.id, from: selfId, identity: command.identity, outcome });
    const now = Date.now();
    if (now >= command.deadline) {
      await answer({ status: 'timeout', sent: wasDelivered });
      this.count(report, 'answered');
      return;
    }
    if (!wasDelivered && mayForward(command)) {
      const target = forwardingTarget(command, await presence.get(command.identity), nodeId, now);
      if (target !== null && (await liveness.isAlive(target))) {
        try {
          await send(target, forwarded(command));
          this.count(report, 'forwarded');
        } catch (error) {
          if (!(error instanceof InboxFullError)) throw error;
          await answer(outcomeFromError(error));
          this.count(report, 'answered');
        }
        return;
      }
    }
    await answer(
      wasDelivered
        ? { status: 'notConnected', reason: `node ${nodeId} died while handling the command`, maybeDelivered: true }
        : { status: 'notConnected', reason: `node ${nodeId} died` },
    );
    this.count(report, 'answered');
  }

  private count(report: NatsTakeoverReport, field: 'forwarded' | 'answered' | 'dropped'): void {
    report[field]++;
    this[field]++;
  }

  private async removeStalePresence(nodeId: string): Promise<number> {
    const { presence } = this.options;
    let removed = 0;
    for (const record of await presence.listOwned(nodeId)) {
      if (await presence.remove(record.identity, nodeId, record.epoch)) removed++;
    }
    return removed;
  }

  private schedule(delayMs: number): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.scan()
        .catch((error: unknown) => {
          this.failures++;
          this.options.logger.debug?.(`nodes bucket check failed: ${(error as Error).message}`);
        })
        .finally(() => {
          const again = this.rescan;
          this.rescan = false;
          this.schedule(again ? 0 : this.intervalMs);
        });
    }, delayMs);
    this.timer.unref();
  }
}
