import type { ClusterMessage } from '../cluster/envelope.js';
import type { ClusterLogger } from '../cluster/logger.js';
import { settleWithin, sleep } from '../cluster/time-bounds.js';
import { ConsumedStream } from './consumed-stream.js';
import { acknowledgeInboxEntries } from './inbox-acknowledgement.js';
import type { RedisClient } from './redis-driver.js';
import { decodeEntryMessages, entriesByStream, pairsOf, type StreamEntry } from './stream-publisher.js';

/** Acknowledged history is trimmed at most this often. */
const TRIM_INTERVAL_MS = 1000;
/**
 * BLOCK of a replies-only read where CLIENT UNBLOCK is not available (Redis Cluster): a settled
 * command waits at most this long before the inbox is read again.
 */
const SATURATED_BLOCK_MS = 50;

export interface StreamConsumerOptions {
  /** The node's inbox: commands (each may wait on a charge point), evictions. */
  streamKey: string;
  /**
   * The node's replies stream (answers to its own calls), in the inbox's hash slot. Read in the
   * same XREADGROUP, and still read while the inbox is at `maxInFlight`.
   */
  repliesKey?: string;
  /**
   * The inbox's count of commands packed beyond the first into its entries (INBOX_APPEND_PACKING): an
   * acknowledgement of a packed entry takes its share off (INBOX_ACK). Without it packed entries
   * are acknowledged with a plain XACK.
   */
  packedKey?: string;
  group: string;
  /** Consumer name inside the group: the node id, so a restarted node finds its pending entries. */
  consumer: string;
  /** The connection for XREADGROUP BLOCK (nothing else should wait behind it). */
  reader: () => RedisClient;
  /** The connection for acknowledgements, group creation and metrics. */
  writer: () => RedisClient;
  /**
   * Settling (resolve or reject) acknowledges the entry. Called in stream order. `redelivered`:
   * the entry was read before (it is in this consumer's pending list and not handled by this
   * reader): an earlier process of the node may have sent it to the charge point already.
   */
  handler: (message: ClusterMessage, entryId: string, redelivered: boolean) => void | Promise<void>;
  logger: ClusterLogger;
  /** Entries per read (default 100). */
  batchSize?: number;
  /** BLOCK of each read, at most 1000 ms (default 1000): also bounds how long stop() waits. */
  blockMs?: number;
  /**
   * Inbox handlers (commands) running at once (default 1000); the inbox is not read at the limit.
   * The commands of a read entry (it may pack several) beyond the limit wait here, in order, for
   * a handler to settle.
   */
  maxInFlight?: number;
}

export interface StreamConsumerMetrics {
  /**
   * Delivered to this consumer group and handed to a handler, not acknowledged yet: inbox
   * commands (a packed entry is acknowledged once all of its commands settled) plus replies
   * stream entries (XPENDING).
   */
  pending: number;
  /**
   * Not handed to a handler yet: inbox commands unread or read and waiting for room under
   * maxInFlight, plus replies stream entries not yet delivered to the group (XINFO GROUPS lag).
   */
  lag: number;
  /** Entries in the streams, acknowledged ones included (XLEN), inbox and replies. */
  length: number;
}

/**
 * A node's reader: XREADGROUP on its own inbox and replies streams through a consumer group.
 * On start it first re-reads its own pending entries (id 0), which is how a node restarted
 * after a crash resumes what it had not acknowledged; then it reads new entries (`>`) with BLOCK.
 * Handlers are started in stream order without waiting for each other (a handler may wait on
 * a charge point for seconds); each entry is acknowledged once its handler settles.
 * With `maxInFlight` inbox handlers running it reads the replies stream alone, so the answers
 * to this node's own calls never queue behind commands waiting on slow charge points; replies
 * (settled at once) do not count against the limit.
 * A command whose deadline has passed is handed over too: the handler (the router) answers it
 * as timed out without running it.
 */
export class StreamConsumer {
  private readonly batchSize: number;
  private readonly blockMs: number;
  private readonly maxInFlight: number;
  private readonly inbox: ConsumedStream;
  private readonly streams: ConsumedStream[];
  /** Inbox messages handed to the handler and not settled (an entry may pack several). */
  private inboxMessagesInFlight = 0;
  /** Inbox messages read (their entry pending) waiting for room under maxInFlight, in stream order. */
  private readonly waiting: Array<() => void> = [];
  private handingWaiting = false;
  private running = false;
  private aborted = false;
  private loopDone: Promise<void> = Promise.resolve();
  private readonly settled = new Set<() => void>();
  private ackTimer: { cancel(): void } | null = null;
  private ackFlushing: Promise<void> = Promise.resolve();
  /** A read of the replies stream alone is blocking: a settled command should end it. */
  private blockedOnRepliesOnly = false;
  private readerId: number | null = null;
  private detachReader: () => void = () => undefined;

  /** When a read last returned (health: the blocking connection is really serving reads). */
  lastReadAt = 0;
  /** Messages handed to the handler. */
  received = 0;
  acked = 0;
  /** Entries that held no valid message. */
  malformed = 0;
  /**
   * Pending entries whose content was deleted before we could handle them (XREADGROUP gives
   * their id without fields). Nothing here trims or deletes a pending entry, so only something
   * outside (an XDEL, an XTRIM) does this; with the content went the caller to answer.
   */
  lost = 0;
  handlerErrors = 0;
  readErrors = 0;

  constructor(private readonly options: StreamConsumerOptions) {
    this.batchSize = options.batchSize ?? 100;
    this.blockMs = Math.min(options.blockMs ?? 1000, 1000);
    this.maxInFlight = options.maxInFlight ?? 1000;
    this.inbox = new ConsumedStream(options.streamKey);
    this.streams = options.repliesKey ? [this.inbox, new ConsumedStream(options.repliesKey)] : [this.inbox];
  }

  get isRunning(): boolean {
    return this.running;
  }

  /** The longest a healthy reader goes without a read returning (one BLOCK). */
  get blockTimeMs(): number {
    return this.blockMs;
  }

  /** Entries being handled (or waiting for room), inbox and replies. */
  get inFlightCount(): number {
    let count = 0;
    for (const stream of this.streams) count += stream.inFlight.size;
    return count;
  }

  /** Inbox commands read and waiting for a handler to settle (maxInFlight). */
  get waitingCount(): number {
    return this.waiting.length;
  }

  /** Creates the group if needed, then reads in the background until {@link stop}. */
  async start(): Promise<void> {
    if (this.running) return;
    await this.ensureGroup();
    await this.trackReaderId();
    this.running = true;
    this.aborted = false;
    for (const stream of this.streams) stream.pendingCursor = '0';
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
    // Commands read and waiting for room are handed over as handlers settle: wait for them too.
    while (this.inFlightCount > 0 && Date.now() < deadline) {
      await settleWithin(new Promise<void>((resolve) => this.settled.add(resolve)), Math.max(1, deadline - Date.now()));
    }
    await this.flushAcks();
    for (const stream of this.streams) stream.cancelTrim();
    this.detachReader();
  }

  /** Stops at once: nothing more is read or acknowledged (crash simulation / abort). */
  abort(): void {
    this.running = false;
    this.aborted = true;
    this.waiting.length = 0;
    for (const stream of this.streams) stream.forget();
    this.ackTimer?.cancel();
    this.ackTimer = null;
    this.wakeAll();
    this.detachReader();
  }

  /**
   * After Redis came back: recreate the groups if the streams vanished (a restart without
   * persistence), and re-read our own pending entries (those in flight here are skipped).
   */
  async resync(): Promise<void> {
    await this.ensureGroup();
    for (const stream of this.streams) stream.pendingCursor = '0';
    if (this.streams.some((stream) => stream.ackQueue.length > 0)) this.scheduleAckFlush(0);
  }

  /** Creates the consumer group (and the stream) on each stream. True when one had to be created. */
  async ensureGroup(): Promise<boolean> {
    const created = await Promise.all(this.streams.map((stream) => this.ensureGroupOn(stream.key)));
    return created.includes(true);
  }

  private async ensureGroupOn(streamKey: string): Promise<boolean> {
    try {
      // From id 0: entries added after the stream vanished and before the group exists are not skipped.
      await this.options.writer().xgroup('CREATE', streamKey, this.options.group, '0', 'MKSTREAM');
      return true;
    } catch (error) {
      if (error instanceof Error && error.message.startsWith('BUSYGROUP')) return false;
      throw error;
    }
  }

  /**
   * Inbox and replies summed: an unread reply is a call about to time out, as real as a command.
   * The inbox's lag counts commands: those in unread entries (the packed count, less what entries
   * read here pack) and those read here waiting for room under maxInFlight.
   */
  async metrics(): Promise<StreamConsumerMetrics> {
    const client = this.options.writer();
    const { packedKey } = this.options;
    const [packed, ...each] = await Promise.all([
      packedKey ? client.get(packedKey).then(Number, () => 0) : 0,
      ...this.streams.map((stream) => this.metricsOf(client, stream.key)),
    ]);
    let held = 0;
    for (const extra of this.inbox.packedExtra.values()) held += extra;
    // In commands, not entries (an inbox entry may pack several): lag = not handed to a handler
    // yet (unread, or read and waiting for room); pending = handed over, entry not acknowledged.
    const inbox = each[0];
    each[0] = {
      ...inbox,
      lag: inbox.lag + Math.max(0, (packed || 0) - held) + this.waiting.length,
      pending: Math.max(0, inbox.pending + held - this.waiting.length),
    };
    return each.reduce((sum, one) => ({
      pending: sum.pending + one.pending,
      lag: sum.lag + one.lag,
      length: sum.length + one.length,
    }));
  }

  private async metricsOf(client: RedisClient, streamKey: string): Promise<StreamConsumerMetrics> {
    const { group } = this.options;
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
    return { pending, lag: await this.lagOf(client, streamKey, info), length: Number(length) || 0 };
  }

  /**
   * Redis 7 reports `lag`; it is null after deletions inside the unread range. Then use
   * entries-added - entries-read, and on older servers count the entries after
   * last-delivered-id.
   */
  private async lagOf(client: RedisClient, streamKey: string, info: Record<string, unknown>): Promise<number> {
    if (typeof info.lag === 'number') return info.lag;
    if (info.lag !== null && info.lag !== undefined && Number.isFinite(Number(info.lag))) return Number(info.lag);
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
      const room = this.maxInFlight - this.inboxMessagesInFlight - this.waiting.length;
      // At the limit the inbox waits, but replies (settled at once) are still read.
      const streams = room > 0 ? this.streams : this.streams.slice(1);
      if (streams.length === 0) {
        this.lastReadAt = Date.now(); // backpressure, not a stuck reader
        await new Promise<void>((resolve) => this.settled.add(resolve));
        continue;
      }
      const cursors = streams.map((stream) => stream.pendingCursor);
      let byStream: Map<string, StreamEntry[]>;
      try {
        byStream = entriesByStream(await this.read(streams, cursors, room > 0 ? Math.min(this.batchSize, room) : this.batchSize));
        this.lastReadAt = Date.now();
        backoffMs = 50;
      } catch (error) {
        if (!this.running) break;
        this.readErrors++;
        const message = (error as Error).message ?? String(error);
        if (message.startsWith('NOGROUP')) {
          // A stream (and its group) vanished: Redis restarted without persistence, or it expired.
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
      } finally {
        this.blockedOnRepliesOnly = false;
      }
      // After abort() nothing more is handled; after stop() what was already read is still
      // handled (and acknowledged) rather than left pending.
      if (this.aborted) break;
      streams.forEach((stream, i) => {
        const entries = byStream.get(stream.key) ?? [];
        stream.advance(cursors[i], entries.at(-1)?.id);
        const fromPendingList = cursors[i] !== null;
        for (const entry of entries) this.dispatch(stream, entry, fromPendingList);
      });
    }
  }

  private read(streams: ConsumedStream[], cursors: Array<string | null>, count: number): Promise<unknown> {
    const { group, consumer } = this.options;
    const args: Array<string | number> = ['GROUP', group, consumer, 'COUNT', count];
    // Re-reading pending entries returns at once; only new entries are waited for.
    if (cursors.every((cursor) => cursor === null)) {
      const repliesOnly = streams[0] !== this.inbox;
      args.push('BLOCK', repliesOnly && this.readerId === null ? Math.min(this.blockMs, SATURATED_BLOCK_MS) : this.blockMs);
      this.blockedOnRepliesOnly = repliesOnly;
    }
    args.push('STREAMS', ...streams.map((stream) => stream.key), ...cursors.map((cursor) => cursor ?? '>'));
    const reader = this.options.reader() as unknown as { xreadgroup(...args: Array<string | number>): Promise<unknown> };
    return reader.xreadgroup(...args);
  }

  private dispatch(stream: ConsumedStream, entry: StreamEntry, redelivered: boolean): void {
    // Only a re-read of our pending list can return an entry handled or in flight here: a read
    // of new entries ('>') never returns one this group was given before.
    if (redelivered && stream.isKnown(entry.id)) return;
    if (entry.fields === null) {
      this.lost++;
      this.options.logger.warn(`entry ${entry.id} of ${stream.key} was deleted before it was handled: its caller gets no answer`);
      this.queueAck(stream, entry.id);
      return;
    }
    const messages = decodeEntryMessages(entry.fields);
    if (!messages) {
      this.malformed++;
      this.queueAck(stream, entry.id);
      return;
    }
    // An entry of several replies (REPLY_BATCH_VERSION) or commands (PACKED_COMMANDS_VERSION) is
    // acknowledged once all of them are handled.
    let unsettled = messages.length;
    const isInbox = stream === this.inbox;
    if (isInbox && this.options.packedKey && messages.length > 1) stream.packedExtra.set(entry.id, messages.length - 1);
    stream.inFlight.add(entry.id);
    const settled = (): void => {
      const done = --unsettled === 0;
      if (done) {
        stream.inFlight.delete(entry.id);
        this.queueAck(stream, entry.id);
      }
      if (!isInbox) return;
      this.inboxMessagesInFlight--;
      this.handWaiting();
      // Room for one more command: a read of the replies alone ends, the inbox is read again.
      if (this.inboxMessagesInFlight + this.waiting.length < this.maxInFlight) this.onInboxRoom();
      else if (done) this.wakeAll(); // stop() waits for entries
    };
    for (const message of messages) {
      if (!isInbox) {
        this.handle(message, entry.id, redelivered, settled);
      } else if (this.inboxMessagesInFlight < this.maxInFlight && this.waiting.length === 0) {
        this.inboxMessagesInFlight++;
        this.handle(message, entry.id, redelivered, settled);
      } else {
        this.waiting.push(() => this.handle(message, entry.id, redelivered, settled));
      }
    }
  }

  /**
   * Hands waiting inbox commands over, in order, while there is room under maxInFlight. Not
   * re-entered: a handler that settles at once makes room for the loop already running.
   */
  private handWaiting(): void {
    if (this.handingWaiting) return;
    this.handingWaiting = true;
    try {
      while (this.waiting.length > 0 && this.inboxMessagesInFlight < this.maxInFlight && !this.aborted) {
        this.inboxMessagesInFlight++;
        this.waiting.shift()!();
      }
    } finally {
      this.handingWaiting = false;
    }
  }

  /** Hands one message to the handler; `settled` once it is done with it. */
  private handle(message: ClusterMessage, entryId: string, redelivered: boolean, settled: () => void): void {
    // A command past its deadline still goes to the handler: the router answers it "timed out,
    // never sent" at once (and never runs it), so the caller need not guess after its grace. A
    // command appended twice (a write retried after its reply was lost) is handed over twice: the
    // cluster layer's RecentCommands runs a delivery once, whichever transport repeated it.
    this.received++;
    const failed = (error: unknown): void => {
      this.handlerErrors++;
      this.options.logger.warn(`handler for ${message.kind} ${entryId} failed: ${(error as Error)?.message ?? String(error)}`);
      settled();
    };
    let outcome: void | Promise<void>;
    try {
      outcome = this.options.handler(message, entryId, redelivered);
    } catch (error) {
      failed(error);
      return;
    }
    // Most handlers (replies) finish synchronously: no promise chain for them.
    if (outcome !== undefined && typeof outcome.then === 'function') outcome.then(settled, failed);
    else settled();
  }

  /** An inbox handler settled: a read of the replies alone ends now, so the inbox is read again. */
  private onInboxRoom(): void {
    this.wakeAll();
    if (this.blockedOnRepliesOnly && this.running) {
      this.blockedOnRepliesOnly = false;
      void this.interruptRead();
    }
  }

  private wakeAll(): void {
    if (this.settled.size === 0) return;
    const waiters = [...this.settled];
    this.settled.clear();
    for (const wake of waiters) wake();
  }

  private queueAck(stream: ConsumedStream, id: string): void {
    if (this.aborted) return;
    stream.markHandled(id);
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
      await Promise.all(this.streams.map((stream) => this.flushAcksOf(stream)));
    });
    return this.ackFlushing;
  }

  private async flushAcksOf(stream: ConsumedStream): Promise<void> {
    if (stream.ackQueue.length === 0) return;
    const ids = stream.ackQueue;
    stream.ackQueue = [];
    try {
      await this.acknowledge(stream, ids);
      this.acked += ids.length;
      this.scheduleTrim(stream);
    } catch (error) {
      // Once stopped, unacknowledged entries stay pending: the next start re-reads them.
      if (this.aborted || !this.running) return;
      stream.ackQueue = ids.concat(stream.ackQueue);
      this.options.logger.debug?.(`XACK on ${stream.key} failed: ${(error as Error).message}`);
      this.scheduleAckFlush(500);
    }
  }

  /** XACK, or INBOX_ACK when packed entries are among them (their share of the packed count goes too). */
  private async acknowledge(stream: ConsumedStream, ids: readonly string[]): Promise<void> {
    const { packedKey, group } = this.options;
    if (stream.packedExtra.size === 0 || !packedKey) {
      await this.options.writer().xack(stream.key, group, ...ids);
      return;
    }
    await acknowledgeInboxEntries(this.options.writer(), stream.key, packedKey, group, ids, (id) => stream.packedExtra.get(id) ?? 0);
    for (const id of ids) stream.packedExtra.delete(id);
  }

  /**
   * Trims the acknowledged history off a stream (XTRIM MINID ~ <oldest entry still needed>):
   * writers never trim (a full inbox refuses commands instead). Entries in flight, awaiting
   * their XACK or not yet read are never trimmed; neither is anything while our own pending
   * entries are being re-read. So the group's lag stays exact (Redis counts it from entries
   * added and read; an entry trimmed unread would stay in it forever).
   */
  private scheduleTrim(stream: ConsumedStream): void {
    if (stream.trimTimer || this.aborted) return;
    const delay = Math.max(0, stream.lastTrimAt + TRIM_INTERVAL_MS - Date.now());
    stream.trimTimer = setTimeout(() => {
      stream.trimTimer = null;
      void this.trim(stream);
    }, delay);
    stream.trimTimer.unref();
  }

  private async trim(stream: ConsumedStream): Promise<void> {
    const threshold = stream.trimThreshold();
    if (threshold === null || this.aborted || !this.running) return;
    stream.lastTrimAt = Date.now();
    try {
      await this.options.writer().xtrim(stream.key, 'MINID', '~', threshold);
    } catch (error) {
      this.options.logger.debug?.(`XTRIM on ${stream.key} failed: ${(error as Error).message}`);
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
