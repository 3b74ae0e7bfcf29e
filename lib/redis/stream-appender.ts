import type { ClusterMessage } from '../cluster/envelope.js';
import { InboxFullError } from '../protocol/errors.js';
import { INBOX_APPEND } from './lua-scripts.js';
import type { RedisClient } from './redis-driver.js';
import { INBOX_GROUP, MESSAGE_FIELD, type RedisKeys } from './redis-keys.js';
import { encodeMessage } from './stream-publisher.js';

export interface InboxLimits {
  /** Cap on a node's commands not yet handled while its own cap is unknown (this node's `streamMaxLen`). */
  fallbackCap: number;
  /** TTL renewed on every append. */
  ttlMs: number;
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
 * append still admitted or refused whole, in order, as alone. Everything else (replies,
 * evictions: bounded by the calls their receiver waits for) is a plain XADD, the stream's TTL
 * renewed once per turn.
 */
export class StreamAppender {
  /** Streams whose TTL this turn's pipeline already renews. */
  private readonly renewed = new Set<string>();
  /** This turn's command appends, by writer and inbox, in the order they were asked for. */
  private commandAppends = new Map<RedisClient, Map<string, { nodeId: string; requests: CommandAppend[] }>>();
  private flushScheduled = false;

  constructor(
    private readonly keys: RedisKeys,
    private readonly limits: InboxLimits,
  ) {}

  /**
   * Resolves with the entry ids of `messages` (all appended to `streamKey`, one of `nodeId`'s
   * streams); rejects with `InboxFullError` when they hold commands and were refused (none was
   * appended), or with the Redis error.
   */
  append(client: RedisClient, nodeId: string, streamKey: string, messages: readonly ClusterMessage[]): Promise<string[]> {
    if (messages.length === 0) return Promise.resolve([]);
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

  /** One inbox script run per inbox for this turn's command appends; each request settles on its own. */
  private flushCommandAppends(): void {
    const appends = this.commandAppends;
    this.commandAppends = new Map();
    this.flushScheduled = false;
    for (const [client, byStream] of appends) {
      for (const [streamKey, { nodeId, requests }] of byStream) {
        const args: Array<string | number> = [INBOX_GROUP, this.limits.fallbackCap, this.limits.ttlMs];
        for (const { messages } of requests) args.push(messages.length, ...messages.map(encodeMessage));
        INBOX_APPEND.run(client, [streamKey, this.keys.inboxCap(nodeId)], args).then(
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
