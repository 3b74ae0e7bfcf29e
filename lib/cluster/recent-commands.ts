import { BoundedSet } from './bounded-set.js';
import type { CommandEnvelope } from './envelope.js';

/** How many deliveries are remembered: far more than one node handles within any redelivery delay. */
const REMEMBERED = 20_000;

/**
 * The command deliveries a node took recently. A transport may hand the same delivery over twice
 * (JetStream after a server crash that lost the consumer's acknowledgements, a Redis pending
 * entry read again): the second copy must not run, or the charge point gets the command twice.
 * A forward (one hop more) and a parked command taken again (one attempt more) are new deliveries.
 */
export class RecentCommands {
  private readonly keys = new BoundedSet<string>(REMEMBERED);

  /** True the first time this delivery is seen; false for a copy of one taken before. */
  takeFirst(command: CommandEnvelope): boolean {
    return this.keys.add(deliveryKey(command));
  }
}

/** One delivery of a command: its id, forward hop and parked attempt. */
export function deliveryKey(command: CommandEnvelope): string {
  return `${command.id}#${command.hops ?? 0}#${command.parked?.attempt ?? 0}`;
}
