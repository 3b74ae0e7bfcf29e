import { asClusterError, errorMessage } from './call-router.js';
import type { CommandEnvelope, CommandOutcome } from './envelope.js';
import { inboxOf, repliesOf } from './address.js';
import type { EventAdapterInterface } from './event-adapter.interface.js';
import type { CallGate } from './local-call.js';
import type { ClusterLogger } from './logger.js';
import { outcomeFromError } from './outcome.js';
import { parkAgain } from './park-again.js';

export interface ParkedDeliveryDeps {
  nodeId: string;
  adapter: EventAdapterInterface;
  /** Whether this node serves the charge point now (a connection that takes calls). */
  isServing: (identity: string) => boolean;
  logger: ClusterLogger;
}

/**
 * The owner side of `deliverWithinMs`. When a charge point connects here (or a caller parked a
 * command for it just then), the commands parked for it are taken, atomically and in order, and
 * appended to this node's own inbox: from there on they are ordinary commands, with the inbox's
 * fencing, deadlines and takeover answers (a node that dies after taking them answers as for any
 * command it had read). Drains of one charge point run one after the other, so order holds.
 */
export class ParkedDelivery {
  private readonly drains = new Map<string, Promise<void>>();

  constructor(private readonly deps: ParkedDeliveryDeps) {}

  /** Starts delivering what is parked for `identity` (after any drain already running for it). */
  deliver(identity: string): void {
    if (!this.deps.adapter.parkedCommands) return;
    const next = (this.drains.get(identity) ?? Promise.resolve())
      .then(() => this.drain(identity))
      .catch((error) => this.deps.logger.warn(`delivering parked commands to ${identity} failed: ${errorMessage(error)}`))
      .finally(() => {
        if (this.drains.get(identity) === next) this.drains.delete(identity);
      });
    this.drains.set(identity, next);
  }

  /**
   * Owner side, a parked command taken for delivery whose charge point is gone again (before its
   * window ended): parked once more, to wait for the next connection. False: answer it as usual.
   */
  async parkAgain(command: CommandEnvelope, gate: CallGate): Promise<boolean> {
    if (!gate.mayWrite()) return false;
    return parkAgain(this.deps.adapter, this.deps.nodeId, command);
  }

  private async drain(identity: string): Promise<void> {
    const { adapter, nodeId } = this.deps;
    const store = adapter.parkedCommands;
    // Gone meanwhile: the entries stay parked for its next connection.
    if (!store || !this.deps.isServing(identity)) return;
    const now = Date.now();
    const due = await store.takeDue(identity, now);
    if (due.length === 0) return;
    // The call's own timeout runs from now; never past the deadline its caller waits for.
    const commands = due.map(({ command, timeoutMs }) => ({ ...command, deadline: Math.min(command.deadline, now + timeoutMs) }));
    try {
      await adapter.publishBatch(commands.map((message) => ({ to: inboxOf(nodeId), message })));
    } catch (error) {
      await Promise.all(commands.map((command) => this.answer(command, outcomeFromError(asClusterError(error)))));
    }
  }

  private answer(command: CommandEnvelope, outcome: CommandOutcome): Promise<void> {
    const reply = { kind: 'reply', id: command.id, from: this.deps.nodeId, identity: command.identity, outcome } as const;
    return this.deps.adapter.publish(repliesOf(command.origin), reply).catch((error) => {
      this.deps.logger.warn(`answering a parked ${command.action} for ${command.identity} failed: ${errorMessage(error)}`);
    });
  }
}
