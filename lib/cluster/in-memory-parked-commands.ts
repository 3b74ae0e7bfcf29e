import { QueueFullError } from '../protocol/errors.js';
import type { ParkedCommand, ParkedCommandStore } from './parked-command.js';
import { MAX_PARKED_PER_CHARGER } from './parked-command.js';

/**
 * Parked commands of in-process nodes (one bus). They live as long as the process: a single
 * node in memory keeps them across reconnects of its charge points, not across its own restart.
 */
export class InMemoryParkedCommandStore implements ParkedCommandStore {
  private readonly lists = new Map<string, ParkedCommand[]>();

  async park(identity: string, entry: ParkedCommand): Promise<void> {
    const list = this.lists.get(identity) ?? [];
    if (list.length >= MAX_PARKED_PER_CHARGER) throw new QueueFullError(identity, MAX_PARKED_PER_CHARGER);
    list.push(structuredClone(entry));
    this.lists.set(identity, list);
  }

  async takeDue(identity: string, now: number): Promise<ParkedCommand[]> {
    const list = this.lists.get(identity) ?? [];
    const due = list.filter((entry) => entry.deliverBy > now);
    // Entries past their window stay until their caller withdraws them (that answers NotDelivered).
    this.store(identity, list.filter((entry) => entry.deliverBy <= now));
    return due;
  }

  async withdraw(identity: string, commandId: string): Promise<boolean> {
    const list = this.lists.get(identity) ?? [];
    const kept = list.filter((entry) => entry.command.id !== commandId);
    this.store(identity, kept);
    return kept.length < list.length;
  }

  private store(identity: string, list: ParkedCommand[]): void {
    if (list.length === 0) this.lists.delete(identity);
    else this.lists.set(identity, list);
  }
}
