import type { ClusterMessage } from '../cluster/envelope.js';
import type { ClusterLogger } from '../cluster/logger.js';
import { settleWithin, sleep } from '../cluster/time-bounds.js';
import type { RedisClient } from './redis-driver.js';
import { decodeEntryFields, entriesOf, pairsOf, type StreamEntry } from './stream-publisher.js';

/** How many handled entry ids are remembered to skip duplicates on a pending re-read. */
const HANDLED_MEMORY = 20_000;
/** Acknowledged history is trimmed at most this often. */
const TRIM_INTERVAL_MS = 1000;

export interface StreamConsumerOptions {
  streamKey: string;
  group: string;
  /** Consumer name inside the group: the node id, so a restarted node finds its pending entries. */
  consumer: string;
  /** The connection for XREADGROUP BLOCK (nothing else should wait behind it). */
  reader: () => RedisClient;
  /** The connection for acknowledgements, group creation and metrics. */
  writer: () => RedisClient;
  /** Settling (resolve or reject) acknowledges the entry. Called in stream order. */
  handler: (message: ClusterMessage, entryId: string) => void | Promise<void>;
  logger: ClusterLogger;
  /** Entries per read (default 100). */
  batchSize?: number;
  /** BLOCK of each read, at most 1000 ms (default 1000): also bounds how long stop() waits. */
  blockMs?: number;
  /** Handlers running at once; reading pauses at the limit (default 1000). */
  maxInFlight?: number;
}

export interface StreamConsumerMetrics {
  /** Delivered to this consumer group, not acknowledged yet (XPENDING). */
  pending: number;
  /** In the stream, not yet delivered to the group (XINFO GROUPS lag). */
  lag: number;
  /** Entries in the stream, acknowledged ones included (XLEN). */
  length: number;
}

/**
 * A node's inbox reader: XREADGROUP on its own stream through a consumer group. On start it
 * first re-reads its own pending entries (id 0), which is how a node restarted after a crash
 * resumes what it had not acknowledged; then it reads new entries (`>`) with BLOCK.
 * Handlers are started in stream order without waiting for each other (a handler may wait on
 * a charge point for seconds); each entry is acknowledged once its handler settles.
 * A command whose deadline has passed is handed over too: the handler (the router) answers it
 * as timed out without running it.
 */
export class StreamConsumer {
  private readonly batchSize: number;
  private readonly blockMs: number;
  private readonly maxInFlight: number;
  private running = false;
  private aborted = false;
  private loopDone: Promise<void> = Promise.resolve();
  /** Cursor while re-reading our own pending entries; null once on new entries. */
  private pendingCursor: string | null = '0';
  private readonly inFlight = new Set<string>();
  private readonly settled = new Set<() => void>();
  private ackQueue: string[] = [];
  /**
   * Recently handled ids. A re-read of our pending entries must not run them again, even when
   * its reply (blocking connection) overtakes the XACK reply (writer connection).
   */
  private readonly handled = new Set<string>();
  /**
   * Ids of recent commands. A writer whose connection broke between Redis appending a command
   * and answering (a master failing over, a reconnect) sends it again: the second entry has
   * a new entry id but the same command id, and must not reach the charge point twice.
   */
  private readonly recentCommands = new Set<string>();
  private ackTimer: { cancel(): void } | null = null;
  private ackFlushing: Promise<void> = Promise.resolve();
  /** Id of the newest entry read with `>`: everything after it is unread. */
  private lastReadId: string | null = null;
  private lastTrimAt = 0;
  private trimTimer: NodeJS.Timeout | null = null;
  private readerId: number | null = null;
  private detachReader: () => void = () => undefined;

  /** When a read last returned (health: the blocking connection is really serving reads). */
  lastReadAt = 0;
  /** Messages handed to the handler. */
  received = 0;
  acked = 0;
  /** Commands acknowledged unhandled because their deadline had passed. */
  /** Entries that held no valid message (or were trimmed before delivery). */
  malformed = 0;
  /** Commands acknowledged unhandled because the same command id was handled already. */
  duplicates = 0;
  handlerErrors = 0;
  readErrors = 0;

  constructor(private readonly options: StreamConsumerOptions) {
    this.batchSize = options.batchSize ?? 100;
    this.blockMs = Math.min(options.blockMs ?? 1000, 1000);
    this.maxInFlight = options.maxInFlight ?? 1000;
  }

  get isRunning(): boolean {
    return this.running;
  }

  /** The longest a healthy reader goes without a read returning (one BLOCK). */
  get blockTimeMs(): number {
    return this.blockMs;
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** Creates the group if needed, then reads in the background until {@link stop}. */
  async start(): Promise<void> {
    if (this.running) return;
    await this.ensureGroup();
    await this.trackReaderId();
    this.running = true;
    this.aborted = false;
    this.pendingCursor = '0';
    this.loopDone = this.loop();
  }

  /**
   * Stops reading, waits (at most `drainMs`) for running handlers and flushes their
   * acknowledgements. Entries still unacknowledged stay pending for the next start.
   */
  async stop(drainMs = 5000): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.wakeAll();
    await this.interruptRead();
    await settleWithin(this.loopDone, this.blockMs + 1000);
    const deadline = Date.now() + drainMs;
    while (this.inFlight.size > 0 && Date.now() < deadline) {
      await settleWithin(new Promise<void>((resolve) => this.settled.add(resolve)), Math.max(1, deadline - Date.now()));
    }
    await this.flushAcks();
    if (this.trimTimer) clearTimeout(this.trimTimer);
    this.trimTimer = null;
    this.detachReader();
  }

  /** Stops at once: nothing more is read or acknowledged (crash simulation / abort). */
  abort(): void {
    this.running = false;
    this.aborted = true;
    this.ackQueue = [];
    this.handled.clear();
    this.ackTimer?.cancel();
    this.ackTimer = null;
    if (this.trimTimer) clearTimeout(this.trimTimer);
    this.trimTimer = null;
    this.wakeAll();
    this.detachReader();
  }

  /**
   * After Redis came back: recreate the group if the stream vanished (a restart without
   * persistence), and re-read our own pending entries (those in flight here are skipped).
   */
  async resync(): Promise<void> {
    await this.ensureGroup();
    this.pendingCursor = '0';
    if (this.ackQueue.length > 0) this.scheduleAckFlush(0);
  }

  /** Creates the consumer group (and the stream). True when it had to be created. */
  async ensureGroup(): Promise<boolean> {
    const { streamKey, group } = this.options;
    try {
      // From id 0: entries added after the stream vanished and before the group exists are not skipped.
      await this.options.writer().xgroup('CREATE', streamKey, group, '0', 'MKSTREAM');
      return true;
    } catch (error) {
      if (error instanceof Error && error.message.startsWith('BUSYGROUP')) return false;
      throw error;
    }
  }

  async metrics(): Promise<StreamConsumerMetrics> {
    const { streamKey, group } = this.options;
    const client = this.options.writer();
    const pipeline = client.pipeline();
    pipeline.xinfo('GROUPS', streamKey);
    pipeline.xpending(streamKey, group);
    pipeline.xlen(streamKey);
    const [[groupsError, groups], [pendingError, summary], [, length]] = ((await pipeline.exec()) ?? []) as Array<
      [Error | null, unknown]
    >;
    if (groupsError || pendingError) return { pending: 0, lag: 0, length: Number(length) || 0 };
    const info = (groups as unknown[]).map(pairsOf).find((entry) => String(entry.name) === group);
    const pending = Number(Array.isArray(summary) ? summary[0] : pairsOf(summary).count) || 0;
    if (!info) return { pending, lag: 0, length: Number(length) || 0 };
    return { pending, lag: await this.lagOf(client, info), length: Number(length) || 0 };
  }

  /**
   * Redis 7 reports `lag`; it is null after deletions inside the unread range. Then use
   * entries-added - entries-read, and on older servers count the entries after
   * last-delivered-id.
   */
  private async lagOf(client: RedisClient, info: Record<string, unknown>): Promise<number> {
    if (typeof info.lag === 'number') return info.lag;
    if (info.lag !== null && info.lag !== undefined && Number.isFinite(Number(info.lag))) return Number(info.lag);
    const { streamKey } = this.options;
    if (info['entries-read'] !== undefined && info['entries-read'] !== null) {
      const stream = pairsOf(await client.xinfo('STREAM', streamKey));
      const added = Number(stream['entries-added']);
      const read = Number(info['entries-read']);
      if (Number.isFinite(added) && Number.isFinite(read)) return Math.max(0, added - read);
    }
    const after = await client.xrange(streamKey, `(${String(info['last-delivered-id'])}`, '+', 'COUNT', 100_000);
    return after.length;
  }

  private async loop(): Promise<void> {
    let backoffMs = 50;
    while (this.running) {
      if (this.inFlight.size >= this.maxInFlight) {
        this.lastReadAt = Date.now(); // backpressure, not a stuck reader
        await new Promise<void>((resolve) => this.settled.add(resolve));
        continue;
      }
      const cursor = this.pendingCursor;
      const count = Math.min(this.batchSize, this.maxInFlight - this.inFlight.size);
      let entries: StreamEntry[];
      try {
        entries = entriesOf(await this.read(cursor, count));
        this.lastReadAt = Date.now();
        backoffMs = 50;
      } catch (error) {
        if (!this.running) break;
        this.readErrors++;
        const message = (error as Error).message ?? String(error);
        if (message.startsWith('NOGROUP')) {
          // The stream (and its group) vanished: Redis restarted without persistence, or it expired.
          const recreated = await this.ensureGroup().then(
            () => true,
            () => false,
          );
          if (!recreated) await sleep(backoffMs);
          continue;
        }
        this.options.logger.debug?.(`reading ${this.options.streamKey} failed: ${message}`);
        await sleep(backoffMs);
        backoffMs = Math.min(backoffMs * 2, 1000);
        continue;
      }
      // After abort() nothing more is handled; after stop() what was already read is still
      // handled (and acknowledged) rather than left pending.
      if (this.aborted) break;
      if (cursor !== null && this.pendingCursor === cursor) {
        this.pendingCursor = entries.length === 0 ? null : entries[entries.length - 1].id;
      } else if (cursor === null && entries.length > 0) {
        this.lastReadId = entries[entries.length - 1].id;
      }
      for (const entry of entries) this.dispatch(entry);
    }
  }

  private read(cursor: string | null, count: number): Promise<unknown> {
    const { streamKey, group, consumer } = this.options;
    const args: Array<string | number> = ['GROUP', group, consumer, 'COUNT', count];
    if (cursor === null) args.push('BLOCK', this.blockMs);
    args.push('STREAMS', streamKey, cursor ?? '>');
    const reader = this.options.reader() as unknown as { xreadgroup(...args: Array<string | number>): Promise<unknown> };
    return reader.xreadgroup(...args);
  }

  private dispatch(entry: StreamEntry): void {
    if (this.inFlight.has(entry.id) || this.handled.has(entry.id)) return;
    const message = entry.fields ? decodeEntryFields(entry.fields) : null;
    if (!message) {
      this.malformed++;
      this.queueAck(entry.id);
      return;
    }
    if (message.kind === 'command') {
      // A command past its deadline still goes to the handler: the router answers it "timed out,
      // never sent" at once (and never runs it), so the caller need not guess after its grace.
      if (this.recentCommands.has(message.id)) {
        this.duplicates++;
        this.queueAck(entry.id);
        return;
      }
      this.recentCommands.add(message.id);
      if (this.recentCommands.size > HANDLED_MEMORY) this.recentCommands.delete(this.recentCommands.values().next().value as string);
    }
    this.received++;
    this.inFlight.add(entry.id);
    const settled = (): void => {
      this.inFlight.delete(entry.id);
      this.queueAck(entry.id);
      this.wakeAll();
    };
    const failed = (error: unknown): void => {
      this.handlerErrors++;
      this.options.logger.warn(`handler for ${message.kind} ${entry.id} failed: ${(error as Error)?.message ?? String(error)}`);
      settled();
    };
    let outcome: void | Promise<void>;
    try {
      outcome = this.options.handler(message, entry.id);
    } catch (error) {
      failed(error);
      return;
    }
    // Most handlers (replies) finish synchronously: no promise chain for them.
    if (outcome !== undefined && typeof outcome.then === 'function') outcome.then(settled, failed);
    else settled();
  }

  private wakeAll(): void {
    if (this.settled.size === 0) return;
    const waiters = [...this.settled];
    this.settled.clear();
    for (const wake of waiters) wake();
  }

  private queueAck(id: string): void {
    if (this.aborted) return;
    this.handled.add(id);
    if (this.handled.size > HANDLED_MEMORY) this.handled.delete(this.handled.values().next().value as string);
    this.ackQueue.push(id);
    this.scheduleAckFlush(0);
  }

  private scheduleAckFlush(delayMs: number): void {
    if (this.ackTimer) return;
    const flush = () => {
      this.ackTimer = null;
      void this.flushAcks();
    };
    if (delayMs === 0) {
      // setImmediate, not setTimeout(0): the XACK then joins the writer's auto-pipeline of this
      // turn (the replies and commands this batch produced) instead of a write of its own.
      const immediate = setImmediate(flush);
      this.ackTimer = { cancel: () => clearImmediate(immediate) };
      return;
    }
    const timer = setTimeout(flush, delayMs);
    timer.unref();
    this.ackTimer = { cancel: () => clearTimeout(timer) };
  }

  /** Acknowledges everything queued; ids whose XACK failed stay queued and are retried. */
  private flushAcks(): Promise<void> {
    this.ackFlushing = this.ackFlushing.then(async () => {
      if (this.ackQueue.length === 0) return;
      const ids = this.ackQueue;
      this.ackQueue = [];
      try {
        await this.options.writer().xack(this.options.streamKey, this.options.group, ...ids);
        this.acked += ids.length;
        this.scheduleTrim();
      } catch (error) {
        // Once stopped, unacknowledged entries stay pending: the next start re-reads them.
        if (this.aborted || !this.running) return;
        this.ackQueue = ids.concat(this.ackQueue);
        this.options.logger.debug?.(`XACK on ${this.options.streamKey} failed: ${(error as Error).message}`);
        this.scheduleAckFlush(500);
      }
    });
    return this.ackFlushing;
  }

  /**
   * Trims the acknowledged history off the stream (XTRIM MINID ~ <oldest entry still needed>),
   * so `MAXLEN ~ streamMaxLen` on the producers only ever bites on a real backlog. Entries in
   * flight, awaiting their XACK or not yet read are never trimmed; neither is anything while
   * our own pending entries are being re-read.
   */
  private scheduleTrim(): void {
    if (this.trimTimer || this.aborted) return;
    const delay = Math.max(0, this.lastTrimAt + TRIM_INTERVAL_MS - Date.now());
    this.trimTimer = setTimeout(() => {
      this.trimTimer = null;
      void this.trim();
    }, delay);
    this.trimTimer.unref();
  }

  private async trim(): Promise<void> {
    if (this.pendingCursor !== null || this.lastReadId === null || this.aborted || !this.running) return;
    this.lastTrimAt = Date.now();
    let threshold = nextStreamId(this.lastReadId);
    for (const id of this.inFlight) if (compareStreamIds(id, threshold) < 0) threshold = id;
    for (const id of this.ackQueue) if (compareStreamIds(id, threshold) < 0) threshold = id;
    try {
      await this.options.writer().xtrim(this.options.streamKey, 'MINID', '~', threshold);
    } catch (error) {
      this.options.logger.debug?.(`XTRIM on ${this.options.streamKey} failed: ${(error as Error).message}`);
    }
  }

  /** Ends a blocked XREADGROUP at once (CLIENT UNBLOCK) instead of waiting out its BLOCK. */
  private async interruptRead(): Promise<void> {
    if (this.readerId === null) return;
    try {
      await settleWithin(this.options.writer().client('UNBLOCK', this.readerId), 500);
    } catch {
      // The read then ends on its own within blockMs.
    }
  }

  private async trackReaderId(): Promise<void> {
    const reader = this.options.reader();
    if (!('client' in reader) || (reader as { isCluster?: boolean }).isCluster) return;
    const refresh = (): void => {
      (reader.client('ID') as Promise<number>).then(
        (id) => {
          this.readerId = id;
        },
        () => {
          this.readerId = null;
        },
      );
    };
    reader.on('ready', refresh);
    this.detachReader = () => {
      reader.off('ready', refresh);
      this.detachReader = () => undefined;
    };
    try {
      this.readerId = (await settleWithin(reader.client('ID') as Promise<number>, 2000)) ?? null;
    } catch {
      this.readerId = null;
    }
  }
}

function parseStreamId(id: string): [number, number] {
  const dash = id.indexOf('-');
  return dash === -1 ? [Number(id), 0] : [Number(id.slice(0, dash)), Number(id.slice(dash + 1))];
}

export function compareStreamIds(a: string, b: string): number {
  const [am, as] = parseStreamId(a);
  const [bm, bs] = parseStreamId(b);
  return am !== bm ? am - bm : as - bs;
}

/** The smallest id after `id` (XTRIM MINID keeps entries >= it). */
export function nextStreamId(id: string): string {
  const [ms, seq] = parseStreamId(id);
  return `${ms}-${seq + 1}`;
}
