import { InboxFullError, NodeLaneMissingError, QueueFullError } from '../protocol/errors.js';
import { inboxOf, repliesOf } from './address.js';
import type { CommandOutcome } from './envelope.js';
import { answerVersion, OLDEST_READABLE_WIRE_VERSION, WIRE_VERSION, wireVersionOf } from './envelope.js';
import type { EventAdapterInterface, PendingEntry } from './event-adapter.interface.js';
import { forwarded, forwardingTarget, mayForward } from './forwarding.js';
import { outcomeFromError } from './outcome.js';
import { parkAgain } from './park-again.js';

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
 * - a parked command (`deliverWithinMs`) it never read whose charge point has no live owner waits
 *   again in the parked list while its window lasts (cluster/park-again.ts), counted as forwarded;
 * - the rest is answered `notConnected`; one the dead node had read may have reached the charge
 *   point, so it says `maybeDelivered` and is never sent again (a Reset must not run twice);
 * - a command in a wire version newer than `wireVersion` is read by its frame only (its deadline
 *   and hops are not trusted): answered `notConnected` as above, never forwarded.
 * Answers go back in the caller's wire version when it is older than `wireVersion`.
 */
export async function settleLostEntry(
  adapter: EventAdapterInterface,
  self: string,
  lostNode: string,
  entry: PendingEntry,
  wireVersion = WIRE_VERSION,
): Promise<LostEntryFate> {
  const message = entry.message;
  if (!message || message.kind !== 'command') return 'dropped';
  if (message.origin === lostNode || !(await adapter.isNodeAlive(message.origin))) return 'dropped';
  const answer = async (outcome: CommandOutcome): Promise<LostEntryFate> => {
    const v = answerVersion(wireVersion, message);
    try {
      await adapter.publish(repliesOf(message.origin), { kind: 'reply', id: message.id, from: self, identity: message.identity, outcome, v });
    } catch (error) {
      // The caller's node lost its replies stream (it was taken over too, and may be rejoining):
      // nobody can read this answer, and failing here would fail the whole takeover, again and
      // again. Its caller hears a timeout from its own node at the deadline.
      if (error instanceof NodeLaneMissingError) return 'dropped';
      throw error;
    }
    return 'answered';
  };
  const version = wireVersionOf(message);
  const readable = version >= OLDEST_READABLE_WIRE_VERSION && version <= wireVersion;
  const now = Date.now();
  if (!readable) return answer(diedWith(lostNode, entry.delivered));
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
  if (!entry.delivered && message.parked) {
    try {
      if (await parkAgain(adapter, self, message, now)) return 'forwarded';
    } catch (error) {
      // Its parked list is full: the caller hears so (never sent) instead of waiting out its timeout.
      if (!(error instanceof QueueFullError)) throw error;
      return answer(outcomeFromError(error));
    }
  }
  return answer(diedWith(lostNode, entry.delivered));
}

/** The answer for a command whose node died: maybe delivered when the node had read it. */
function diedWith(lostNode: string, delivered: boolean): CommandOutcome {
  return delivered
    ? { status: 'notConnected', reason: `node ${lostNode} died while handling the command`, maybeDelivered: true }
    : { status: 'notConnected', reason: `node ${lostNode} died` };
}
