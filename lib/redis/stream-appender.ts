import { REPLY_BATCH_VERSION, wireVersionOf, type ClusterMessage } from '../cluster/envelope.js';
import { InboxFullError } from '../protocol/errors.js';
import { INBOX_APPEND, INBOX_APPEND_PACKING, PACK_MAX_CHARS, PACK_MAX_COUNT } from './lua-scripts.js';
import type { RedisClient } from './redis-driver.js';
import { INBOX_GROUP, MESSAGE_FIELD, type RedisKeys } from './redis-keys.js';
import { encodeMessage } from './stream-publisher.js';

/** Bounds on one entry of batched replies (a turn may produce more: they take several entries). */
const REPLY_BATCH_MAX_COUNT = 100;
const REPLY_BATCH_MAX_CHARS = 256 * 1024;

export interface InboxLimits {
  /** Cap on a node's commands not yet handled while its own cap is unknown (this node's `streamMaxLen`). */
  fallbackCap: number;
  /** TTL renewed on every append. */
  ttlMs: number;
}

interface ReplyAppend {
  json: string;
  resolve(id: string): void;
  reject(error: unknown): void;
}

/** A reply its receiver reads in a batch entry (it announced `REPLY_BATCH_VERSION`, so the reply carries it). */
function isBatchableReply(message: ClusterMessage): boolean {
  return message.kind === 'reply' && wireVersionOf(message) >= REPLY_BATCH_VERSION;
}

interface CommandAppend {
  messages: readonly ClusterMessage[];
  resolve(ids: string[]): void;
  reject(error: unknown): void;
}

/** Settles each request of one {@link INBOX_APPEND} run: `{ cap, then per request 1, id... | 0, queued }`. */
function settleRequests(nodeId: string, requests: readonly CommandAppend[], reply: unknown[]): void {
  const cap = Number(reply[0]);
  let at = 1;
  for (const request of requests) {
    if (Number(reply[at]) === 1) {
      request.resolve(reply.slice(at + 1, at + 1 + request.messages.length).map(String));
      at += 1 + request.messages.length;
    } else {
      request.reject(new InboxFullError(nodeId, Number(reply[at + 1]), cap));
      at += 2;
    }
  }
}

/**
 * Appends messages to a node's streams so that everything a node writes to Redis in one turn of
 * the event loop leaves in one socket write (the cross-node profile spent a third of the
 * caller's time in socket writes, one per message): on an auto-pipelining writer (ours are)
 * each append joins that turn's pipeline together with the acknowledgements and presence reads
 * of the same turn. Commands go through {@link INBOX_APPEND}, which refuses them when the
 * owner's inbox is at its cap and never trims; the command appends of one turn to one inbox
 * share one run of it (a script run per command cost Redis an XLEN and an XINFO each), each
 * append still admitted or refused whole, in order, as alone. The replies of one turn to one
 * node that reads them so (`REPLY_BATCH_VERSION`) share one entry (one XADD; the receiver's read,
 * decode and XACK are per entry too): replies need no cap (bounded by the calls their receiver
 * waits for), no takeover (they die with their receiver) and no order. The commands of one turn
 * to an owner that reads packed entries (`PACKED_COMMANDS_VERSION`, learned from its replies)
 * share entries too, packed by the same script run (up to PACK_MAX_COUNT each; the cap still
 * counts commands). Everything else (older receivers' replies, evictions) is a plain XADD each.
 * The stream's TTL is renewed once per turn.
 */
export class StreamAppender {
  /** Streams whose TTL this turn's pipeline already renews. */
  private readonly renewed = new Set<string>();
  /** This turn's command appends, by writer and inbox, in the order they were asked for. */
  private commandAppends = new Map<RedisClient, Map<string, { nodeId: string; requests: CommandAppend[] }>>();
  private flushScheduled = false;
  /** This turn's batchable replies, by writer and replies stream, in the order they were asked for. */
  private replyAppends = new Map<RedisClient, Map<string, ReplyAppend[]>>();
  private replyFlushScheduled = false;

  constructor(
    private readonly keys: RedisKeys,
    private readonly limits: InboxLimits,
    /** Whether `nodeId` reads inbox entries that pack several commands (else one entry per command). */
    private readonly readsPackedCommands: (nodeId: string) => boolean = () => false,
  ) {}

  /**
   * Resolves with the entry ids of `messages` (all appended to `streamKey`, one of `nodeId`'s
   * streams); rejects with `InboxFullError` when they hold commands and were refused (none was
   * appended), or with the Redis error.
   */
  append(client: RedisClient, nodeId: string, streamKey: string, messages: readonly ClusterMessage[]): Promise<string[]> {
    if (messages.length === 0) return Promise.resolve([]);
    if (messages.every(isBatchableReply)) return this.appendReplies(client, streamKey, messages);
    if (!messages.some((message) => message.kind === 'command')) {
      // A reply: one XADD joining this turn's auto-pipeline, and no async frame around it.
      if (messages.length === 1 && client.options.enableAutoPipelining) {
        try {
          const appended = client.xadd(streamKey, '*', MESSAGE_FIELD, encodeMessage(messages[0]));
          this.renewTtl(client, streamKey);
          return appended.then((id) => [String(id)]);
        } catch (error) {
          return Promise.reject(error);
        }
      }
      return this.appendUncapped(client, streamKey, messages);
    }
    return new Promise<string[]>((resolve, reject) => {
      let byStream = this.commandAppends.get(client);
      if (!byStream) this.commandAppends.set(client, (byStream = new Map()));
      const turn = byStream.get(streamKey);
      if (turn) turn.requests.push({ messages, resolve, reject });
      else byStream.set(streamKey, { nodeId, requests: [{ messages, resolve, reject }] });
      if (this.flushScheduled) return;
      this.flushScheduled = true;
      setImmediate(() => this.flushCommandAppends());
    });
  }

  /** Resolves with the entry id of each reply once its batch entry is appended. */
  private appendReplies(client: RedisClient, streamKey: string, messages: readonly ClusterMessage[]): Promise<string[]> {
    let byStream = this.replyAppends.get(client);
    if (!byStream) this.replyAppends.set(client, (byStream = new Map()));
    let queued = byStream.get(streamKey);
    if (!queued) byStream.set(streamKey, (queued = []));
    const list = queued;
    const appended = messages.map(
      (message) =>
        new Promise<string>((resolve, reject) => {
          list.push({ json: encodeMessage(message), resolve, reject });
        }),
    );
    if (!this.replyFlushScheduled) {
      this.replyFlushScheduled = true;
      setImmediate(() => this.flushReplyAppends());
    }
    return appended.length === 1 ? appended[0].then((id) => [id]) : Promise.all(appended);
  }

  /** One XADD per batch of this turn's replies to one stream (a single reply stays a plain entry). */
  private flushReplyAppends(): void {
    const appends = this.replyAppends;
    this.replyAppends = new Map();
    this.replyFlushScheduled = false;
    for (const [client, byStream] of appends) {
      for (const [streamKey, replies] of byStream) {
        for (let from = 0; from < replies.length; ) {
          let to = from + 1;
          let chars = replies[from].json.length;
          while (to < replies.length && to - from < REPLY_BATCH_MAX_COUNT && chars + replies[to].json.length <= REPLY_BATCH_MAX_CHARS) {
            chars += replies[to].json.length;
            to++;
          }
          this.appendReplyEntry(client, streamKey, replies.slice(from, to));
          from = to;
        }
        this.renewTtl(client, streamKey);
      }
    }
  }

  private appendReplyEntry(client: RedisClient, streamKey: string, batch: readonly ReplyAppend[]): void {
    const value = batch.length === 1 ? batch[0].json : `[${batch.map((reply) => reply.json).join(',')}]`;
    let appended: Promise<unknown>;
    try {
      appended = client.xadd(streamKey, '*', MESSAGE_FIELD, value);
    } catch (error) {
      appended = Promise.reject(error);
    }
    appended.then(
      (id) => batch.forEach((reply) => reply.resolve(String(id))),
      (error: unknown) => batch.forEach((reply) => reply.reject(error)),
    );
  }

  /** One inbox script run per inbox for this turn's command appends; each request settles on its own. */
  private flushCommandAppends(): void {
    const appends = this.commandAppends;
    this.commandAppends = new Map();
    this.flushScheduled = false;
    for (const [client, byStream] of appends) {
      for (const [streamKey, { nodeId, requests }] of byStream) {
        const counts = requests.map((request) => request.messages.length).join(',');
        const messages = requests.map((request) => request.messages.map(encodeMessage).join('\n')).join('\n');
        const args = [INBOX_GROUP, this.limits.fallbackCap, this.limits.ttlMs, counts, messages];
        const appended = this.readsPackedCommands(nodeId)
          ? INBOX_APPEND_PACKING.run(client, [streamKey, this.keys.inboxCap(nodeId), this.keys.inboxPacked(nodeId)], [...args, PACK_MAX_COUNT, PACK_MAX_CHARS])
          : INBOX_APPEND.run(client, [streamKey, this.keys.inboxCap(nodeId)], args);
        appended.then(
          (reply) => settleRequests(nodeId, requests, reply as unknown[]),
          (error: unknown) => requests.forEach((request) => request.reject(error)),
        );
      }
    }
  }

  private async appendUncapped(client: RedisClient, streamKey: string, messages: readonly ClusterMessage[]): Promise<string[]> {
    if (!client.options.enableAutoPipelining) {
      const pipeline = client.pipeline();
      for (const message of messages) pipeline.xadd(streamKey, '*', MESSAGE_FIELD, encodeMessage(message));
      pipeline.pexpire(streamKey, this.limits.ttlMs);
      const replies = (await pipeline.exec()) ?? [];
      return messages.map((_, i) => {
        const [error, id] = replies[i] ?? [new Error(`pipeline on ${streamKey} got no reply`), null];
        if (error) throw error;
        return String(id);
      });
    }
    const appended = messages.map((message) => client.xadd(streamKey, '*', MESSAGE_FIELD, encodeMessage(message)));
    this.renewTtl(client, streamKey);
    return (await Promise.all(appended)) as string[];
  }

  private renewTtl(client: RedisClient, streamKey: string): void {
    if (this.renewed.has(streamKey)) return;
    if (this.renewed.size === 0) setImmediate(() => this.renewed.clear());
    this.renewed.add(streamKey);
    // A PEXPIRE that failed alone is redone by the next append or the owner's heartbeat.
    client.pexpire(streamKey, this.limits.ttlMs).catch(() => undefined);
  }
}
