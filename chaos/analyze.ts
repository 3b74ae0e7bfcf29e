import { promisesNotDelivered } from './outcome.js';
import { FAILED_OUTCOMES } from './records.js';
import type { CallRecord, CheckSettings, FaultRecord, NodeOutage, OutcomeKind, Receipt, RunRecords, SocketRecord } from './records.js';

/**
 * The proof: a pure function of what was recorded. Every rule below is one promise of the
 * cluster contract; anything that breaks it is a violation, attributed to the fault whose
 * window the call overlapped ("none" outside faults, "final" for the end state).
 */

export interface Violation {
  kind: string;
  fault: string;
  at: number;
  detail: string;
}

export interface FaultSummary {
  fault: string;
  injected: number;
  calls: number;
  outcomes: Partial<Record<OutcomeKind, number>>;
  violations: number;
}

export interface Analysis {
  violations: Violation[];
  summaries: FaultSummary[];
}

const NO_FAULT = 'none';
const FINAL = 'final';

export function analyze(records: RunRecords, settings: CheckSettings): Analysis {
  const violations: Violation[] = [];
  const attribution = new FaultAttribution(records.faults, settings.faultSettleMs);
  const receiptsByTag = groupBy(records.receipts, (receipt) => receipt.tag);
  const socketsByIdentity = groupBy(records.sockets, (socket) => socket.identity);
  const outages = new Outages(records.outages);
  const fenceCloses = new FenceCloses(records.sockets);
  const tagsOfCalls = new Set(records.calls.map((call) => call.tag));
  const identitiesByTag = new Map<string, Set<string>>();
  for (const call of records.calls) {
    if (call.identity === null) continue;
    const identities = identitiesByTag.get(call.tag) ?? new Set<string>();
    identities.add(call.identity);
    identitiesByTag.set(call.tag, identities);
  }

  const summaries = new Map<string, FaultSummary>();
  const summaryOf = (fault: string): FaultSummary => {
    let summary = summaries.get(fault);
    if (!summary) {
      summary = { fault, injected: 0, calls: 0, outcomes: {}, violations: 0 };
      summaries.set(fault, summary);
    }
    return summary;
  };
  for (const fault of records.faults) summaryOf(fault.type).injected++;

  for (const call of records.calls) {
    const end = call.answeredAt ?? call.sentAt + call.timeoutMs + settings.answerMarginMs;
    const fault = attribution.of(call.sentAt, end);
    const summary = summaryOf(fault);
    summary.calls++;
    summary.outcomes[call.outcome] = (summary.outcomes[call.outcome] ?? 0) + 1;
    const report = (kind: string, at: number, detail: string) =>
      violations.push({ kind, fault, at, detail: `${describe(call)}: ${detail}` });
    const receipts = receiptsByTag.get(call.tag) ?? [];
    if (call.identity === null) {
      checkBroadcast(call, receipts, outages, settings, report);
    } else {
      const own = receipts.filter((receipt) => receipt.identity === call.identity);
      checkCall(call, own, socketsByIdentity.get(call.identity) ?? [], outages, fenceCloses, settings, report);
    }
  }

  for (const receipt of records.receipts) {
    if (!tagsOfCalls.has(receipt.tag)) {
      violations.push({ kind: 'unknown-tag', fault: attribution.of(receipt.at, receipt.at), at: receipt.at, detail: `${receipt.identity} received tag ${receipt.tag} that no call sent` });
      continue;
    }
    const targets = identitiesByTag.get(receipt.tag);
    if (targets && !targets.has(receipt.identity)) {
      violations.push({
        kind: 'misrouted',
        fault: attribution.of(receipt.at, receipt.at),
        at: receipt.at,
        detail: `tag ${receipt.tag} for ${[...targets].join(',')} reached ${receipt.identity} (socket ${receipt.socket} on ${receipt.node})`,
      });
    }
  }

  for (const incident of records.incidents) {
    violations.push({ kind: incident.kind, fault: attribution.of(incident.at, incident.at), at: incident.at, detail: incident.detail });
  }
  if (records.final) checkFinalState(records, violations);

  for (const violation of violations) summaryOf(violation.fault).violations++;
  violations.sort((a, b) => a.at - b.at);
  const order = [NO_FAULT, ...records.faults.map((fault) => fault.type), FINAL];
  const sorted = [...summaries.values()].sort((a, b) => order.indexOf(a.fault) - order.indexOf(b.fault));
  return { violations, summaries: sorted };
}

type Report = (kind: string, at: number, detail: string) => void;

function checkCall(
  call: CallRecord,
  receipts: Receipt[],
  sockets: SocketRecord[],
  outages: Outages,
  fenceCloses: FenceCloses,
  settings: CheckSettings,
  report: Report,
): void {
  const { toleranceMs } = settings;
  const windowEnd = call.sentAt + call.timeoutMs + settings.answerMarginMs;
  const askedNodeDown = (kinds: NodeOutage['kind'][]) => outages.overlaps(call.node, call.sentAt, call.answeredAt ?? windowEnd, kinds);

  // A draining node's HTTP server drops connections it has not read yet: no answer, nothing run.
  if (call.outcome === 'lost' && !askedNodeDown(['killed', 'frozen', 'stopping'])) {
    report('answer-lost', call.sentAt, `the HTTP connection broke without an answer while ${call.node} was ${outages.stateAt(call.node, call.sentAt)}`);
  }
  // A busy node reads the request late and answers late; it never drops it.
  if (call.outcome === 'hung' && !askedNodeDown(['killed', 'frozen', 'busy'])) {
    report('answer-hung', call.sentAt, `no answer within timeout ${call.timeoutMs} ms + ${settings.answerMarginMs} ms`);
  }
  if (call.answeredAt !== null && call.answeredAt - call.sentAt > call.timeoutMs + settings.answerMarginMs && !askedNodeDown(['frozen', 'killed', 'busy'])) {
    report('answer-late', call.answeredAt, `answered after ${call.answeredAt - call.sentAt} ms (timeout ${call.timeoutMs} ms)`);
  }
  if (call.kind === 'batch' && call.status === 200 && call.batchAnswerCounts?.[call.identity!] !== 1) {
    report('batch-answer-count', call.answeredAt ?? call.sentAt, `the batch answer lists ${call.identity} ${call.batchAnswerCounts?.[call.identity!] ?? 0} times`);
  }

  if (receipts.length > 1) {
    report('delivered-twice', receipts[1].at, `received ${receipts.length} times: ${receipts.map(describeReceipt).join('; ')}`);
  }
  if (promisesNotDelivered(call.outcome) && receipts.length > 0) {
    report('delivered-though-answered-not-delivered', receipts[0].at, `answer said not delivered, yet ${describeReceipt(receipts[0])} (answer at +${(call.answeredAt ?? call.sentAt) - call.sentAt} ms)`);
  }
  if (FAILED_OUTCOMES.has(call.outcome) && call.answeredAt !== null) {
    const late = receipts.find((receipt) => receipt.at > call.answeredAt! + toleranceMs);
    if (late) {
      report('delivered-after-failure-answer', late.at, `reached the charger ${late.at - call.answeredAt} ms after the caller was told it failed: ${describeReceipt(late)}`);
    }
  }
  if (call.outcome === 'unavailable-sent') {
    // Sent, answer lost with the node asked: it may still arrive, but never after its deadline
    // (counted from when the asked node could read the request: after its main thread was busy).
    const readAt = outages.endOf(call.node, call.sentAt, 'busy') ?? call.sentAt;
    const late = receipts.find((receipt) => receipt.at > readAt + call.timeoutMs + toleranceMs);
    if (late) report('delivered-after-failure-answer', late.at, `reached the charger ${late.at - call.sentAt - call.timeoutMs} ms after its deadline: ${describeReceipt(late)}`);
  }
  if (call.outcome === 'result') {
    const data = (call.body as { result?: { data?: unknown } } | null)?.result?.data;
    if (data !== call.tag) report('wrong-result', call.answeredAt!, `result data ${JSON.stringify(data)} is not the tag`);
    if (!receipts.some((receipt) => receipt.at <= call.answeredAt! + toleranceMs)) {
      report('result-without-delivery', call.answeredAt!, 'answered with a result, but the charger never received the command');
    }
  }
  if (call.outcome === 'call-error') {
    report('unexpected-call-error', call.answeredAt!, `the simulated chargers never answer CALLERROR, yet the caller got ${JSON.stringify(call.body)}`);
  }
  if (call.outcome === 'internal-error') {
    report('untyped-error', call.answeredAt!, `HTTP ${call.status} ${JSON.stringify(call.body)}: the caller cannot tell what happened`);
  }
  if (call.outcome === 'not-connected' && call.answeredAt !== null) {
    const socket = steadySocket(sockets, call.sentAt - settings.stableMs, call.answeredAt);
    // 1012 soon after: its node had lost its lease and was taken over (a stall or failover of its
    // Redis shard past the TTL), which the README answers NotConnected; the node closes its sockets once it learns.
    // Or the charger happened to close it itself (a reboot) just before its node's 1012 burst.
    const takenOver =
      socket !== undefined &&
      ((socket.closeCode === 1012 && socket.closedAt !== null && socket.closedAt - call.answeredAt <= settings.answerMarginMs) ||
        (socket.closingAt !== undefined && fenceCloses.between(socket.node, socket.closingAt, call.answeredAt + settings.answerMarginMs)));
    if (socket && !takenOver && !outages.overlaps(socket.node, socket.openedAt, call.answeredAt, ['killed', 'frozen', 'stopping'])) {
      report(
        'not-connected-while-connected',
        call.answeredAt,
        `definitive NotConnected while socket ${socket.serial} on ${socket.node} was open since ${call.sentAt - socket.openedAt} ms before the call and stayed open (its node undisturbed)`,
      );
    }
  }
}

function checkBroadcast(call: CallRecord, receipts: Receipt[], outages: Outages, settings: CheckSettings, report: Report): void {
  const { toleranceMs } = settings;
  const askedNodeFrozenAtSend = outages.overlaps(call.node, call.sentAt - 1, call.sentAt + 1, ['frozen', 'killed', 'stopping', 'busy']);
  const bySocket = groupBy(receipts, (receipt) => String(receipt.socket));
  for (const same of bySocket.values()) {
    if (same.length > 1) report('delivered-twice', same[1].at, `broadcast received ${same.length} times on one socket: ${same.map(describeReceipt).join('; ')}`);
  }
  if (call.outcome === 'refused' && receipts.length > 0) {
    report('delivered-though-answered-not-delivered', receipts[0].at, `the request never reached a node, yet ${describeReceipt(receipts[0])}`);
  }
  if (FAILED_OUTCOMES.has(call.outcome) && call.answeredAt !== null) {
    const late = receipts.find((receipt) => receipt.at > call.answeredAt! + toleranceMs);
    if (late) report('delivered-after-failure-answer', late.at, `broadcast reached a charger ${late.at - call.answeredAt} ms after the caller was told it failed: ${describeReceipt(late)}`);
  }
  if (!askedNodeFrozenAtSend) {
    const deadline = Math.max(call.sentAt + call.timeoutMs, call.answeredAt ?? 0);
    const late = receipts.find((receipt) => receipt.at > deadline + toleranceMs);
    if (late) report('broadcast-after-deadline', late.at, `reached a charger ${late.at - (call.sentAt + call.timeoutMs)} ms after its deadline: ${describeReceipt(late)}`);
  }
}

function checkFinalState(records: RunRecords, violations: Violation[]): void {
  const final = records.final!;
  const add = (kind: string, detail: string) => violations.push({ kind, fault: FINAL, at: final.at, detail });
  const openByIdentity = groupBy(final.openSockets, (socket) => socket.identity);
  for (const [identity, sockets] of openByIdentity) {
    if (sockets.length > 1) add('two-open-sockets', `${identity} has ${sockets.length} open sockets: ${sockets.map((s) => `${s.serial}@${s.node}`).join(', ')}`);
  }
  for (const identity of final.disconnected) add('charger-not-connected', `${identity} has no open socket after quiescence (its connects were refused or dropped)`);
  const seen = new Set<string>();
  for (const node of final.nodes) {
    if (node.healthStatus !== 200) add('node-not-ready', `${node.node}: GET /health ${node.healthStatus} ${JSON.stringify(node.healthBody)}`);
    if (node.rssBytes === null) add('memory-unknown', `${node.node}: no RSS (process gone?)`);
    else if (node.rssBytes > final.rssLimitBytes) {
      add('memory-bound', `${node.node}: RSS ${(node.rssBytes / 2 ** 20).toFixed(0)} MiB > ${(final.rssLimitBytes / 2 ** 20).toFixed(0)} MiB`);
    }
    if (node.presence === null) {
      add('presence-unreadable', `${node.node}: GET /chargers failed`);
      continue;
    }
    const listed = new Map(node.presence.map((entry) => [entry.identity, entry.nodeId]));
    const once = (key: string, kind: string, detail: string) => {
      if (seen.has(`${kind}:${key}`)) return;
      seen.add(`${kind}:${key}`);
      add(kind, `${detail} (as ${node.node} lists it)`);
    };
    for (const [identity, owner] of listed) {
      const open = openByIdentity.get(identity) ?? [];
      if (!open.some((socket) => socket.node === owner)) {
        once(identity, 'stale-presence', `${identity} listed on ${owner}, open sockets: ${open.map((s) => `${s.serial}@${s.node}`).join(', ') || 'none'}`);
      }
    }
    for (const [identity, open] of openByIdentity) {
      if (!listed.has(identity)) once(identity, 'missing-presence', `${identity} has an open socket on ${open.map((s) => s.node).join(', ')} but is not listed`);
    }
  }
}

/** The one socket of an identity that was open through [from, to], with no other socket of it in that window. */
function steadySocket(sockets: SocketRecord[], from: number, to: number): SocketRecord | undefined {
  // A socket the charger began closing is gone for the node from then on (it sees the close frame first).
  const endOf = (socket: SocketRecord) => socket.closingAt ?? socket.closedAt;
  const overlapping = sockets.filter((socket) => socket.openedAt <= to && (endOf(socket) === null || endOf(socket)! >= from));
  if (overlapping.length !== 1) return undefined;
  const [socket] = overlapping;
  return socket.openedAt <= from && (endOf(socket) === null || endOf(socket)! > to) ? socket : undefined;
}

/** When each node closed sockets with 1012 itself (taken over: it closes all it has, or a drain). */
class FenceCloses {
  private readonly byNode: Map<string, number[]>;
  constructor(sockets: SocketRecord[]) {
    const closed = sockets.filter((socket) => socket.closeCode === 1012 && socket.closedAt !== null && socket.closingAt === undefined);
    this.byNode = new Map([...groupBy(closed, (socket) => socket.node)].map(([node, list]) => [node, list.map((socket) => socket.closedAt!)]));
  }

  between(node: string, from: number, to: number): boolean {
    return (this.byNode.get(node) ?? []).some((at) => at >= from && at <= to);
  }
}

class Outages {
  private readonly byNode: Map<string, NodeOutage[]>;
  constructor(outages: NodeOutage[]) {
    this.byNode = groupBy(outages, (outage) => outage.node);
  }

  overlaps(node: string, from: number, to: number, kinds: NodeOutage['kind'][]): boolean {
    return (this.byNode.get(node) ?? []).some(
      (outage) => kinds.includes(outage.kind) && outage.from <= to && (outage.to === null || outage.to >= from),
    );
  }

  /** The end of an outage of `kind` that `node` was in at `at` (null: none, or it never ended). */
  endOf(node: string, at: number, kind: NodeOutage['kind']): number | null {
    const outage = (this.byNode.get(node) ?? []).find((candidate) => candidate.kind === kind && candidate.from <= at && candidate.to !== null && candidate.to >= at);
    return outage?.to ?? null;
  }

  stateAt(node: string, at: number): string {
    const outage = (this.byNode.get(node) ?? []).find((candidate) => candidate.from <= at && (candidate.to === null || candidate.to >= at));
    return outage ? outage.kind : 'up';
  }
}

/** The latest fault whose window (start to recovery + settle) overlaps a call. */
class FaultAttribution {
  constructor(
    private readonly faults: FaultRecord[],
    private readonly settleMs: number,
  ) {}

  of(from: number, to: number): string {
    let chosen: FaultRecord | undefined;
    for (const fault of this.faults) {
      const end = (fault.recoveredAt ?? Number.POSITIVE_INFINITY) + this.settleMs;
      if (fault.startedAt <= to && end >= from && (!chosen || fault.startedAt > chosen.startedAt)) chosen = fault;
    }
    return chosen ? chosen.type : NO_FAULT;
  }
}

function describe(call: CallRecord): string {
  const target = call.identity === null ? 'broadcast' : `${call.kind} to ${call.identity}`;
  const answer = call.answeredAt === null ? call.outcome : `${call.status} ${call.outcome} at +${call.answeredAt - call.sentAt} ms`;
  return `${target} via ${call.node} tag ${call.tag} (timeout ${call.timeoutMs} ms) → ${answer}`;
}

function describeReceipt(receipt: Receipt): string {
  return `${receipt.identity} received it on socket ${receipt.socket}@${receipt.node} at t=${receipt.at}`;
}

function groupBy<T>(items: Iterable<T>, key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const group = groups.get(k);
    if (group) group.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}
