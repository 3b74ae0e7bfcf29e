/**
 * The answers this node gave to OCPP 2.1 CALLs, by (identity, message id), for a while.
 *
 * OCPP 2.1 lets a charge point retry a CALL with the same message id when it got no answer
 * (the socket dropped, the answer was lost). Running the handler again would book a
 * TransactionEvent twice; a retry gets the first answer back instead. Kept per identity, not
 * per socket, so a retry on a new connection to this node is recognised too.
 *
 * Bounded in both count and age: entries are inserted in time order, so the oldest are at the
 * front of the Map and expire (or are evicted) from there.
 */
export interface AnsweredCallsOptions {
  /** How long an answer is replayed. Default 120 000 ms. */
  ttlMs?: number;
  /** Most answers kept across all identities; the oldest go first. Default 10 000. */
  maxEntries?: number;
}

interface AnsweredCall {
  action: string;
  /** The request's payload as JSON: a retry repeats it, a rebooted charger reusing the id does not. */
  request: string;
  reply: string;
  at: number;
}

const DEFAULT_ANSWERED_CALLS_TTL_MS = 120_000;
const DEFAULT_ANSWERED_CALLS_MAX_ENTRIES = 10_000;

export class AnsweredCalls {
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly answers = new Map<string, AnsweredCall>();

  constructor(options: AnsweredCallsOptions = {}, private readonly now: () => number = Date.now) {
    this.ttlMs = options.ttlMs ?? DEFAULT_ANSWERED_CALLS_TTL_MS;
    this.maxEntries = options.maxEntries ?? DEFAULT_ANSWERED_CALLS_MAX_ENTRIES;
  }

  get size(): number {
    return this.answers.size;
  }

  /** The reply given to this CALL, when it is a retry of one answered recently (same action and payload). */
  replayFor(identity: string, id: string, action: string, payload: unknown): string | undefined {
    this.expire();
    const answered = this.answers.get(keyOf(identity, id));
    if (answered === undefined || answered.action !== action) return undefined;
    return answered.request === JSON.stringify(payload) ? answered.reply : undefined;
  }

  remember(identity: string, id: string, action: string, payload: unknown, reply: string): void {
    const key = keyOf(identity, id);
    // Re-inserting keeps the Map in time order.
    this.answers.delete(key);
    this.answers.set(key, { action, request: JSON.stringify(payload), reply, at: this.now() });
    while (this.answers.size > this.maxEntries) this.answers.delete(this.answers.keys().next().value!);
  }

  private expire(): void {
    const oldestAllowed = this.now() - this.ttlMs;
    for (const [key, answered] of this.answers) {
      if (answered.at >= oldestAllowed) return;
      this.answers.delete(key);
    }
  }
}

function keyOf(identity: string, id: string): string {
  // NUL cannot occur in an identity (validated at the handshake), so keys never collide.
  return `${identity}\u0000${id}`;
}
