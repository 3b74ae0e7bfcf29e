import { inboxOf } from './address.js';
import type { CommandEnvelope } from './envelope.js';
import type { EventAdapterInterface } from './event-adapter.interface.js';

/**
 * `deliverWithinMs`: a parked command taken for delivery whose charge point is gone again (before
 * its window ended) is parked once more, at the end of its list, to wait for the next connection.
 * One more `attempt`, so its next delivery through the same inbox is not dropped as a duplicate.
 * False when it cannot wait (no store, not a parked command, window over): answer it as usual.
 * Used by the owner that finds the socket gone and by a survivor settling a lost node's inbox.
 */
export async function parkAgain(adapter: EventAdapterInterface, self: string, command: CommandEnvelope, now = Date.now()): Promise<boolean> {
  const store = adapter.parkedCommands;
  if (!store || !command.parked || now >= command.parked.deliverBy) return false;
  const { deliverBy, timeoutMs } = command.parked;
  const parked = { ...command.parked, attempt: (command.parked.attempt ?? 0) + 1 };
  await store.park(command.identity, { command: { ...command, hops: undefined, deadline: deliverBy + timeoutMs, parked }, deliverBy, timeoutMs });
  // It may have connected elsewhere meanwhile: that node's drain ran before the entry was back.
  const owner = await adapter.getPresence(command.identity).catch(() => null);
  if (owner && owner.nodeId !== self) {
    await adapter.publish(inboxOf(owner.nodeId), { kind: 'deliverParked', identity: command.identity }).catch(() => undefined);
  }
  return true;
}
