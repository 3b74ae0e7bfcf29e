import type { ClusterMessage } from '../cluster/envelope.js';
import { InboxFullError } from '../protocol/errors.js';
import { INBOX_APPEND } from './lua-scripts.js';
import type { RedisClient } from './redis-driver.js';
import { INBOX_GROUP, type RedisKeys } from './redis-keys.js';
import { encodeMessage } from './stream-publisher.js';

export interface InboxLimits {
  /** Cap on a node's commands not yet handled while its own cap is unknown (this node's `streamMaxLen`). */
  fallbackCap: number;
  /** TTL renewed on every append. */
  ttlMs: number;
}

/**
 * Appends messages to a node's streams, refusing commands its inbox has no room for
 * ({@link INBOX_APPEND}: the owner's cap, never a trim). One EVALSHA per call: on an
 * auto-pipelining writer (ours are) it joins that turn's pipeline with the acknowledgements and
 * presence reads of the same turn, so appends of one turn still leave in one socket write (the
 * cross-node profile spent a third of the caller's time in socket writes, one per message).
 */
export class StreamAppender {
  constructor(
    private readonly keys: RedisKeys,
    private readonly limits: InboxLimits,
  ) {}

  /**
   * Resolves with the entry ids of `messages` (all appended to `streamKey`, one of `nodeId`'s
   * streams); rejects with `InboxFullError` when they were refused (none was appended), or with
   * the Redis error.
   */
  async append(client: RedisClient, nodeId: string, streamKey: string, messages: readonly ClusterMessage[]): Promise<string[]> {
    if (messages.length === 0) return [];
    let commands = 0;
    for (const message of messages) if (message.kind === 'command') commands++;
    const reply = (await INBOX_APPEND.run(
      client,
      [streamKey, this.keys.inboxCap(nodeId)],
      [INBOX_GROUP, this.limits.fallbackCap, this.limits.ttlMs, commands, ...messages.map(encodeMessage)],
    )) as unknown[];
    if (Number(reply[0]) !== 1) throw new InboxFullError(nodeId, Number(reply[1]), Number(reply[2]));
    return reply.slice(1).map(String);
  }
}
