import { performance } from 'node:perf_hooks';
import type { Consumer, ConsumerMessages, JetStreamClient, JetStreamManager, JsMsg } from '@nats-io/jetstream';
import type { ClusterMessage } from '../cluster/envelope.js';
import type { DeliveryInfo } from '../cluster/event-adapter.interface.js';
import type { ClusterLogger } from '../cluster/logger.js';
import { settleWithin, sleep } from '../cluster/time-bounds.js';
import { decodeNatsMessage } from './message-codec.js';
import { READER } from './nats-names.js';

export interface StreamReaderOptions {
  js: () => JetStreamClient;
  jsm: () => JetStreamManager;
  stream: string;
  handler: (message: ClusterMessage, delivery?: DeliveryInfo) => void | Promise<void>;
  logger: ClusterLogger;
  /** Messages pulled at once (default 100). */
  batchSize: number;
  /** Handlers running at once before pulling pauses. */
  maxInFlight: number;
  /** The consumer's ack deadline; a running handler renews it (`+WPI`) every third of it. */
  ackWaitMs: number;
  /** Stream sequences up to this one were read by an earlier incarnation: handed over as redelivered. */
  redeliveredUpTo: number;
}

const REDELIVERED: DeliveryInfo = Object.freeze({ redelivered: true });
/** How long one pull waits for messages: also bounds how long stop() waits. */
const PULL_EXPIRES_MS = 1000;
const STOP_WAIT_MS = 2000;

/**
 * Reads one of this node's work-queue streams through its durable pull consumer, in stream
 * order, handing each message to the handler and acknowledging it once the handler settled
 * (explicit acks; the work queue then drops it). At most `maxInFlight` handlers run; pulling
 * pauses while they do. A running handler keeps its message's ack deadline from expiring.
 */
export class StreamReader {
  private running = false;
  private aborted = false;
  private loop: Promise<void> | null = null;
  private consumer: Consumer | null = null;
  private pull: ConsumerMessages | null = null;
  private readonly inFlight = new Set<JsMsg>();
  private slotWaiters: Array<() => void> = [];
  private workingTimer: NodeJS.Timeout | null = null;
  /** performance.now() of the last pull that returned (messages or not). */
  lastReadAt = 0;
  lastError: string | null = null;
  received = 0;
  acked = 0;
  malformed = 0;
  handlerErrors = 0;
  pullFailures = 0;

  constructor(private readonly options: StreamReaderOptions) {}

  get isRunning(): boolean {
    return this.running;
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  get stream(): string {
    return this.options.stream;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.aborted = false;
    this.lastReadAt = performance.now();
    this.loop = this.run();
    const every = Math.max(100, Math.floor(this.options.ackWaitMs / 3));
    this.workingTimer = setInterval(() => {
      for (const message of this.inFlight) message.working();
    }, every);
    this.workingTimer.unref();
  }

  /** Stops pulling; waits (bounded) for the running handlers to settle and be acknowledged. */
  async stop(): Promise<void> {
    this.halt();
    await settleWithin(Promise.all([this.loop, this.drained()]), STOP_WAIT_MS);
    if (this.workingTimer) clearInterval(this.workingTimer);
    this.workingTimer = null;
  }

  /** Stops at once: nothing more is handled or acknowledged (a crash, a takeover of this node). */
  abort(): void {
    this.aborted = true;
    this.halt();
    if (this.workingTimer) clearInterval(this.workingTimer);
    this.workingTimer = null;
  }

  /** Real JetStream numbers of the consumer: ack-pending, not yet delivered, redelivered. */
  async consumerNumbers(): Promise<{ ackPending: number; pending: number; redelivered: number; length: number }> {
    const jsm = this.options.jsm();
    const [info, stream] = await Promise.all([jsm.consumers.info(this.options.stream, READER), jsm.streams.info(this.options.stream)]);
    return { ackPending: info.num_ack_pending, pending: info.num_pending, redelivered: info.num_redelivered, length: stream.state.messages };
  }

  private halt(): void {
    this.running = false;
    const pull = this.pull;
    this.pull = null;
    pull?.stop();
    this.wakeSlotWaiters();
  }

  private slotFreed(): Promise<void> {
    return new Promise<void>((resolve) => this.slotWaiters.push(resolve));
  }

  private wakeSlotWaiters(): void {
    const waiters = this.slotWaiters;
    this.slotWaiters = [];
    for (const wake of waiters) wake();
  }

  private async drained(): Promise<void> {
    while (this.inFlight.size > 0 && !this.aborted) {
      await this.slotFreed();
    }
  }

  private async run(): Promise<void> {
    let backoffMs = 100;
    while (this.running) {
      const room = this.options.maxInFlight - this.inFlight.size;
      if (room <= 0) {
        await this.slotFreed();
        continue;
      }
      try {
        // Looked up once and again only after a failure (the consumer may have been made anew).
        this.consumer ??= await this.options.js().consumers.get(this.options.stream, READER);
        const consumer = this.consumer;
        const pull = await consumer.fetch({ max_messages: Math.min(this.options.batchSize, room), expires: PULL_EXPIRES_MS });
        this.pull = pull;
        for await (const message of pull) {
          this.lastReadAt = performance.now();
          if (this.aborted) break;
          this.handle(message);
        }
        if (this.pull === pull) this.pull = null;
        this.lastReadAt = performance.now();
        this.lastError = null;
        backoffMs = 100;
      } catch (error) {
        this.consumer = null;
        if (!this.running) break;
        this.pullFailures++;
        this.lastError = (error as Error).message;
        this.options.logger.debug?.(`reading ${this.options.stream} failed: ${this.lastError}`);
        await sleep(backoffMs);
        backoffMs = Math.min(backoffMs * 2, 2000);
      }
    }
  }

  private handle(raw: JsMsg): void {
    this.received++;
    const message = decodeNatsMessage(raw.data);
    if (!message) {
      this.malformed++;
      raw.ack();
      return;
    }
    const redelivered = raw.info.redelivered || raw.seq <= this.options.redeliveredUpTo;
    this.inFlight.add(raw);
    void Promise.resolve()
      .then(() => (redelivered ? this.options.handler(message, REDELIVERED) : this.options.handler(message)))
      .catch((error: unknown) => {
        this.handlerErrors++;
        this.options.logger.warn(`handler failed on ${this.options.stream}: ${(error as Error).message}`);
      })
      .finally(() => {
        this.inFlight.delete(raw);
        // After abort (taken over) what was read is never acknowledged: the takeover answered it.
        if (!this.aborted) {
          raw.ack();
          this.acked++;
        }
        this.wakeSlotWaiters();
      });
  }
}
