import { randomBytes } from 'node:crypto';

/**
 * Correlation ids of this process's calls: a random prefix drawn once per process and a
 * counter. Unique across the cluster and across restarts (the prefix), like a UUID per call,
 * without drawing randomness per call (a UUID per call showed in the caller's profile).
 */
export class CallIds {
  private readonly prefix = `${randomBytes(12).toString('base64url')}.`;
  private counter = 0;

  next(): string {
    return this.prefix + (this.counter++).toString(36);
  }
}
