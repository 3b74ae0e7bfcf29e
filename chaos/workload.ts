import { CHAOS_VENDOR } from './charge-point.js';
import type { ChargePoint } from './charge-point.js';
import { controlRequest } from './control-client.js';
import type { ControlAnswer } from './control-client.js';
import type { NodeProcess } from './node-process.js';
import { outcomeOfAnswer, outcomeOfBatchEntry } from './outcome.js';
import type { CallRecord, OutcomeKind, RunRecords } from './records.js';
import type { Rng } from './rng.js';

export interface WorkloadOptions {
  /** Unicast calls per second. */
  callsPerSecond: number;
  /** Per-call `timeoutMs` values to draw from. */
  timeouts: number[];
  /** How long past its timeout a request may wait for its HTTP answer before it counts as hung. */
  abortMarginMs: number;
  token: string;
}

/**
 * The callers: steady DataTransfer calls to random charge points through random nodes (not
 * necessarily the owner), a broadcast-batch now and then, a broadcast rarely. Every request
 * carries a unique tag and becomes a {@link CallRecord}.
 */
export class Workload {
  private seq = 0;
  private readonly inFlight = new Set<Promise<void>>();
  private timers: NodeJS.Timeout[] = [];

  constructor(
    private readonly nodes: NodeProcess[],
    private readonly chargers: ChargePoint[],
    private readonly records: RunRecords,
    private readonly rng: Rng,
    private readonly options: WorkloadOptions,
  ) {}

  start(): void {
    this.timers.push(setInterval(() => this.track(this.call()), 1000 / this.options.callsPerSecond));
    this.timers.push(setInterval(() => this.track(this.batch()), 2_000));
    this.timers.push(setInterval(() => this.track(this.broadcast()), 9_000));
    this.timers.push(setInterval(() => this.burst(), 5_000));
  }

  /**
   * Several calls at once to a few charge points (on `nodeId` when given), so that commands
   * queue up behind each other on their owner: what a fault must not execute late.
   */
  burst(nodeId?: string): void {
    const candidates = this.chargers.filter((charger) => charger.connected && (nodeId === undefined || charger.currentNode === nodeId));
    for (let i = 0; i < 4 && candidates.length > 0; i++) {
      const charger = candidates.splice(this.rng.int(0, candidates.length - 1), 1)[0];
      for (let j = 0; j < 6; j++) this.track(this.call(charger));
    }
  }

  /** Stops sending and waits for every request in flight to be answered (or to hit its abort bound). */
  async stop(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    await Promise.all(this.inFlight);
  }

  private track(work: Promise<void>): void {
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
  }

  private askedNode(): NodeProcess {
    const reachable = this.nodes.filter((node) => node.state !== 'down');
    return this.rng.pick(reachable.length > 0 ? reachable : this.nodes);
  }

  /** Mostly connected charge points (a call to a disconnected one must be told NotConnected). */
  private target(): ChargePoint {
    const connected = this.chargers.filter((charger) => charger.connected);
    return this.rng.chance(0.9) && connected.length > 0 ? this.rng.pick(connected) : this.rng.pick(this.chargers);
  }

  private newTag(kind: string): string {
    return `${kind}-${++this.seq}-${this.rng.int(0, 1e9).toString(36)}`;
  }

  private payload(tag: string): Record<string, unknown> {
    return { vendorId: CHAOS_VENDOR, messageId: 'chaos', data: tag };
  }

  private async call(charger = this.target()): Promise<void> {
    const node = this.askedNode();
    const timeoutMs = this.rng.pick(this.options.timeouts);
    const tag = this.newTag('c');
    const record = this.newRecord('call', tag, charger.identity, node, timeoutMs);
    const answer = await this.send(node, `/chargers/${charger.identity}/calls/DataTransfer?timeoutMs=${timeoutMs}`, this.payload(tag), timeoutMs);
    this.settle(record, answer, (status, body) => outcomeOfAnswer(status, body));
  }

  private async batch(): Promise<void> {
    const count = this.rng.int(5, 20);
    const identities = [...new Set(Array.from({ length: count }, () => this.target().identity))];
    const node = this.askedNode();
    const timeoutMs = this.rng.pick(this.options.timeouts);
    const tag = this.newTag('b');
    const records = identities.map((identity) => this.newRecord('batch', tag, identity, node, timeoutMs));
    const answer = await this.send(node, `/broadcast-batch/DataTransfer?timeoutMs=${timeoutMs}`, { identities, payload: this.payload(tag) }, timeoutMs);
    const entries = answer.kind === 'answer' && answer.status === 200 && Array.isArray(answer.body) ? (answer.body as Array<Record<string, unknown>>) : null;
    const counts: Record<string, number> = {};
    for (const entry of entries ?? []) counts[String(entry.identity)] = (counts[String(entry.identity)] ?? 0) + 1;
    for (const record of records) {
      if (!entries) {
        this.settle(record, answer, (status, body) => outcomeOfAnswer(status, body));
        continue;
      }
      const entry = entries.find((candidate) => candidate.identity === record.identity);
      record.batchAnswerCounts = counts;
      this.settle(record, answer, () => (entry ? outcomeOfBatchEntry(entry) : 'other-http'), entry ?? null);
      if (entry?.status === 'fulfilled') record.body = { result: entry.result };
    }
  }

  private async broadcast(): Promise<void> {
    const node = this.askedNode();
    const timeoutMs = this.rng.pick(this.options.timeouts);
    const tag = this.newTag('B');
    const record = this.newRecord('broadcast', tag, null, node, timeoutMs);
    const answer = await this.send(node, `/broadcast/DataTransfer?timeoutMs=${timeoutMs}`, this.payload(tag), timeoutMs);
    this.settle(record, answer, (status, body) => outcomeOfAnswer(status, body));
  }

  private newRecord(kind: CallRecord['kind'], tag: string, identity: string | null, node: NodeProcess, timeoutMs: number): CallRecord {
    const record: CallRecord = {
      seq: this.records.calls.length,
      kind,
      tag,
      identity,
      node: node.nodeId,
      timeoutMs,
      sentAt: Date.now(),
      answeredAt: null,
      status: null,
      body: null,
      outcome: 'hung',
    };
    this.records.calls.push(record);
    return record;
  }

  private send(node: NodeProcess, path: string, body: unknown, timeoutMs: number): Promise<ControlAnswer> {
    return controlRequest(node.httpUrl, 'POST', path, this.options.token, body, timeoutMs + this.options.abortMarginMs);
  }

  private settle(
    record: CallRecord,
    answer: ControlAnswer,
    classify: (status: number, body: unknown) => OutcomeKind,
    body: unknown = answer.kind === 'answer' ? answer.body : null,
  ): void {
    if (answer.kind !== 'answer') {
      record.outcome = answer.kind;
      record.body = answer.kind === 'lost' ? answer.reason : null;
      return;
    }
    record.answeredAt = answer.at;
    record.status = answer.status;
    record.body = body;
    record.outcome = classify(answer.status, answer.body);
  }
}
