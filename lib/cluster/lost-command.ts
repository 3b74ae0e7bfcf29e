import { InboxFullError } from '../protocol/errors.js';
import { inboxOf, repliesOf } from './address.js';
import type { CommandOutcome } from './envelope.js';
import type { EventAdapterInterface, PendingEntry } from './event-adapter.interface.js';
import { forwarded, forwardingTarget, mayForward } from './forwarding.js';
import { outcomeFromError } from './outcome.js';

/** What became of one entry of a lost node's inbox. */
export type LostEntryFate = 'forwarded' | 'answered' | 'dropped';

/**
 * The policy for one entry a lost node left in its inbox, the same for every transport:
 * - replies, evictions and the like were for the dead node only: dropped; so is a command whose
 *   caller is the dead node itself or is dead too;
 * - a command past its deadline is answered `timeout` (with `sent` = whether the dead node had
 *   read it), so its caller hears precisely instead of guessing after its grace;
 * - a command the dead node never read follows its charge point to its new live owner
 *   (cluster/forwarding.ts, hop limit included); a full inbox there is answered as such;
 * - the rest is answered `notConnected`; one the dead node had read may have reached the charge
 *   point, so it says `maybeDelivered` and is never sent again (a Reset must not run twice).
 */
export async function settleLostEntry(adapter: EventAdapterInterface, self: string, lostNode: string, entry: PendingEntry): Promise<LostEntryFate> {
  const message = entry.message;
  if (!message || message.kind !== 'command') return 'dropped';
  if (message.origin === lostNode || !(await adapter.isNodeAlive(message.origin))) return 'dropped';
  const answer = async (outcome: CommandOutcome): Promise<LostEntryFate> => {
    await adapter.publish(repliesOf(message.origin), { kind: 'reply', id: message.id, from: self, identity: message.identity, outcome });
    return 'answered';
  };
  const now = Date.now();
  if (now >= message.deadline) return answer({ status: 'timeout', sent: entry.delivered });
  if (!entry.delivered && mayForward(message)) {
    const target = forwardingTarget(message, await adapter.getPresence(message.identity), lostNode, now);
    if (target !== null && (await adapter.isNodeAlive(target))) {
      try {
        await adapter.publish(inboxOf(target), forwarded(message));
        return 'forwarded';
      } catch (error) {
        // The new owner's inbox is full: the caller hears so (never sent) instead of waiting out its timeout.
        if (!(error instanceof InboxFullError)) throw error;
        return answer(outcomeFromError(error));
      }
    }
  }
  return answer(
    entry.delivered
      ? { status: 'notConnected', reason: `node ${lostNode} died while handling the command`, maybeDelivered: true }
      : { status: 'notConnected', reason: `node ${lostNode} died` },
  );
}
