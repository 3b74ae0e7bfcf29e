/**
 * The answers this node gave to OCPP 2.1 CALLs, by (identity, message id), for a while.
 *
 * OCPP 2.1 lets a charge point retry a CALL with the same message id when it got no answer
 * (the socket dropped, the answer was lost). Running the handler again would book a
 * TransactionEvent twice; a retry gets the first answer back instead. Kept per identity, not
 * per socket, so a retry on a new connection to this node is recognised too.
 *
 * What is kept, and for how long:
 * - Of the request only its action and a SHA-256 digest of its payload: a retry repeats the
 *   payload, a rebooted charger reusing the id with other content does not match.
 * - The reply text, counted in bytes against a bound per charge point and one per node; the
 *   oldest answers go first. A reply bigger than a bound is not kept at all.
 * - At most `ttlMs`; an unref'd timer sweeps expired answers, so an idle node frees them too.
 * - A BootNotification is never replayed, and it forgets every answer given to that charge
 *   point before it: after a reboot the charger counts its ids afresh, and a Heartbeat reusing
 *   an old id must get a fresh currentTime.
 */
import { createHash } from 'node:crypto';

export interface AnsweredCallsOptions {
  /** How long an answer is replayed. Default 120 000 ms. */
  ttlMs?: number;
  /** Bytes of answers kept per charge point (identity); its oldest go first. Default 256 KiB. */
  maxBytesPerChargePoint?: number;
  /** Bytes of answers kept across the node; the node's oldest go first. Default 32 MiB. */
  maxBytesPerNode?: number;
}

export const DEFAULT_ANSWERED_CALLS_OPTIONS: Required<AnsweredCallsOptions> = {
  ttlMs: 120_000,
  maxBytesPerChargePoint: 256 * 1024,
  maxBytesPerNode: 32 * 1024 * 1024,
};

/**
 * Counted on top of the reply text: the entry, its key, digest and Map slots. A rough figure, so
 * that many tiny answers cannot escape the byte bounds.
 */
export const ANSWER_OVERHEAD_BYTES = 256;

const BOOT_NOTIFICATION = 'BootNotification';
const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

export interface CallRequest {
  id: string;
  action: string;
  payload: unknown;
}

/** One inbound CALL as the cache saw it arrive: the answer to replay, or none (run the handler). */
export interface Arrival {
  readonly identity: string;
  readonly call: CallRequest;
  /** The earlier CALLRESULT when this CALL is a retry of an answered one. */
  readonly replay: string | undefined;
  /** Arrival order, to refuse answers to calls sent before a later boot. */
  readonly seq: number;
  readonly at: number;
}

interface AnsweredCall {
  identity: string;
  id: string;
  action: string;
  digest: string;
  reply: string;
  bytes: number;
  at: number;
}

/** One charge point's answers, oldest first, and their bytes. */
interface ChargePointAnswers {
  byId: Map<string, AnsweredCall>;
  bytes: number;
}

interface BootMark {
  seq: number;
  at: number;
}

type Timer = ReturnType<typeof setTimeout>;

export class AnsweredCalls {
  private readonly ttlMs: number;
  private readonly maxBytesPerChargePoint: number;
  private readonly maxBytesPerNode: number;
  /** Sweeps run at most this late, so that answers given close together expire in one sweep. */
  private readonly sweepSlackMs: number;
  /** Every answer, oldest first (insertion order is time order). */
  private readonly answers = new Map<string, AnsweredCall>();
  private readonly chargePoints = new Map<string, ChargePointAnswers>();
  /** The last boot of each identity that booted within ttlMs, oldest first. */
  private readonly boots = new Map<string, BootMark>();
  private totalBytes = 0;
  private arrivals = 0;
  private sweepTimer: Timer | null = null;

  constructor(options: AnsweredCallsOptions = {}, private readonly now: () => number = Date.now) {
    this.ttlMs = options.ttlMs ?? DEFAULT_ANSWERED_CALLS_OPTIONS.ttlMs;
    this.maxBytesPerChargePoint = options.maxBytesPerChargePoint ?? DEFAULT_ANSWERED_CALLS_OPTIONS.maxBytesPerChargePoint;
    this.maxBytesPerNode = options.maxBytesPerNode ?? DEFAULT_ANSWERED_CALLS_OPTIONS.maxBytesPerNode;
    this.sweepSlackMs = Math.min(1_000, Math.ceil(this.ttlMs / 16));
  }

  /** Answers kept. */
  get size(): number {
    return this.answers.size;
  }

  /** Bytes counted against maxBytesPerNode. */
  get bytes(): number {
    return this.totalBytes;
  }

  /** Bytes counted against maxBytesPerChargePoint for this identity. */
  bytesOf(identity: string): number {
    return this.chargePoints.get(identity)?.bytes ?? 0;
  }

  /**
   * A CALL arrived from `identity`. A BootNotification forgets what the charge point was answered
   * before; any other CALL gets its earlier answer when it repeats one (same id, action, payload).
   */
  arrive(identity: string, call: CallRequest): Arrival {
    const at = this.now();
    const seq = ++this.arrivals;
    if (call.action === BOOT_NOTIFICATION) {
      this.forgetChargePoint(identity);
      this.boots.delete(identity);
      this.boots.set(identity, { seq, at });
      this.scheduleSweep();
      return { identity, call, replay: undefined, seq, at };
    }
    return { identity, call, replay: this.replayFor(identity, call, at), seq, at };
  }

  /** Keeps the CALLRESULT given to an arrived CALL, unless the charge point booted since or it is too big. */
  remember(arrival: Arrival, reply: string): void {
    const { identity, call } = arrival;
    if (call.action === BOOT_NOTIFICATION) return;
    const now = this.now();
    // Sent before a boot: the rebooted charger may reuse the id. Older than the window: the boot
    // mark that would tell may be gone, and the charger gave up on this call long ago anyway.
    if (arrival.seq < (this.boots.get(identity)?.seq ?? 0) || now - arrival.at >= this.ttlMs) return;
    const key = keyOf(identity, call.id);
    const replaced = this.answers.get(key);
    if (replaced !== undefined) this.remove(key, replaced);
    const bytes = Buffer.byteLength(reply) + ANSWER_OVERHEAD_BYTES;
    if (bytes > this.maxBytesPerChargePoint || bytes > this.maxBytesPerNode) return;

    const answer: AnsweredCall = { identity, id: call.id, action: call.action, digest: digestOf(call.payload), reply, bytes, at: now };
    let chargePoint = this.chargePoints.get(identity);
    if (chargePoint === undefined) {
      chargePoint = { byId: new Map(), bytes: 0 };
      this.chargePoints.set(identity, chargePoint);
    }
    chargePoint.byId.set(call.id, answer);
    chargePoint.bytes += bytes;
    this.answers.set(key, answer);
    this.totalBytes += bytes;

    while (chargePoint.bytes > this.maxBytesPerChargePoint) {
      const oldest = chargePoint.byId.values().next().value!;
      this.remove(keyOf(identity, oldest.id), oldest);
    }
    while (this.totalBytes > this.maxBytesPerNode) {
      const [oldestKey, oldest] = this.answers.entries().next().value!;
      this.remove(oldestKey, oldest);
    }
    this.scheduleSweep();
  }

  /** Forgets everything and stops the sweep timer (node shutdown). */
  clear(): void {
    this.answers.clear();
    this.chargePoints.clear();
    this.boots.clear();
    this.totalBytes = 0;
    if (this.sweepTimer !== null) clearTimeout(this.sweepTimer);
    this.sweepTimer = null;
  }

  private replayFor(identity: string, call: CallRequest, now: number): string | undefined {
    const answered = this.chargePoints.get(identity)?.byId.get(call.id);
    if (answered === undefined || answered.action !== call.action || now - answered.at >= this.ttlMs) return undefined;
    // Hashed only when the id was answered: a first attempt costs no digest here.
    return answered.digest === digestOf(call.payload) ? answered.reply : undefined;
  }

  private forgetChargePoint(identity: string): void {
    const chargePoint = this.chargePoints.get(identity);
    if (chargePoint === undefined) return;
    for (const answer of [...chargePoint.byId.values()]) this.remove(keyOf(identity, answer.id), answer);
  }

  private remove(key: string, answer: AnsweredCall): void {
    this.answers.delete(key);
    this.totalBytes -= answer.bytes;
    const chargePoint = this.chargePoints.get(answer.identity)!;
    chargePoint.byId.delete(answer.id);
    chargePoint.bytes -= answer.bytes;
    if (chargePoint.byId.size === 0) this.chargePoints.delete(answer.identity);
  }

  private readonly sweep = (): void => {
    this.sweepTimer = null;
    const oldestAllowed = this.now() - this.ttlMs;
    for (const [key, answer] of this.answers) {
      if (answer.at > oldestAllowed) break;
      this.remove(key, answer);
    }
    for (const [identity, boot] of this.boots) {
      if (boot.at > oldestAllowed) break;
      this.boots.delete(identity);
    }
    this.scheduleSweep();
  };

  /** One timer, due when the oldest answer or boot mark expires (plus the slack). */
  private scheduleSweep(): void {
    if (this.sweepTimer !== null) return;
    const oldestAnswer = this.answers.values().next().value?.at ?? Infinity;
    const oldestBoot = this.boots.values().next().value?.at ?? Infinity;
    const oldest = Math.min(oldestAnswer, oldestBoot);
    if (oldest === Infinity) return;
    const delay = Math.max(0, oldest + this.ttlMs - this.now()) + this.sweepSlackMs;
    // Node fires longer timers at once: a huge ttlMs would make the sweep spin.
    this.sweepTimer = setTimeout(this.sweep, Math.min(delay, MAX_TIMER_DELAY_MS));
    // An idle node need not stay up for its cache.
    this.sweepTimer.unref();
  }
}

function keyOf(identity: string, id: string): string {
  // NUL cannot occur in an identity (validated at the handshake), so keys never collide.
  return `${identity}\u0000${id}`;
}

/** The payload as the charger sent it (parsed, key order kept): a retry repeats it exactly. */
function digestOf(payload: unknown): string {
  return createHash('sha256').update(JSON.stringify(payload) ?? '').digest('base64');
}
