import { INBOX_ACK } from './lua-scripts.js';
import type { RedisClient } from './redis-driver.js';

/**
 * Acknowledges inbox entries: a plain XACK, or INBOX_ACK when some of them pack several commands
 * (`extraOf`: an entry's commands but one), so that the inbox's packed count goes down with them.
 * The node's own reader and a takeover of a dead node acknowledge the same way.
 */
export async function acknowledgeInboxEntries(
  client: RedisClient,
  streamKey: string,
  packedKey: string,
  group: string,
  ids: readonly string[],
  extraOf: (id: string) => number,
): Promise<void> {
  const extras = ids.map(extraOf);
  if (extras.every((extra) => extra === 0)) {
    await client.xack(streamKey, group, ...ids);
    return;
  }
  const args: Array<string | number> = [group];
  ids.forEach((id, i) => args.push(id, extras[i]));
  await INBOX_ACK.run(client, [streamKey, packedKey], args);
}
