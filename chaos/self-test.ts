import { analyze } from './analyze.js';
import type { CallRecord, CheckSettings, RunRecords } from './records.js';
import { emptyRecords } from './records.js';

/**
 * Makes sure the checker can fail: a clean synthetic run must give no violation, and each
 * planted fault must give exactly the violation it stands for (and the near misses none).
 */

const T0 = 1_000_000;
const SETTINGS: CheckSettings = { toleranceMs: 100, answerMarginMs: 3_000, stableMs: 3_000, faultSettleMs: 5_000 };

function call(overrides: Partial<CallRecord> & Pick<CallRecord, 'tag' | 'outcome'>): CallRecord {
  return {
    seq: 0,
    kind: 'call',
    identity: 'CP1',
    node: 'node-b',
    timeoutMs: 4_000,
    sentAt: T0 + 10_000,
    answeredAt: T0 + 10_200,
    status: 200,
    body: null,
    ...overrides,
  };
}

/** CP1 on node-a all along, CP2 never connected; one call of each kind, all truthful. */
function cleanRun(): RunRecords {
  const records = emptyRecords();
  records.sockets.push({ serial: 1, identity: 'CP1', node: 'node-a', openedAt: T0, closedAt: null, closeCode: null });
  records.calls.push(
    call({ tag: 'ok', outcome: 'result', body: { result: { status: 'Accepted', data: 'ok' } } }),
    call({ tag: 'gone', identity: 'CP2', outcome: 'not-connected', status: 404, body: { error: 'NotConnected', maybeDelivered: false } }),
    call({ tag: 'slow', outcome: 'timeout-sent', status: 504, answeredAt: T0 + 14_000, body: { error: 'Timeout', sent: true } }),
    call({ tag: 'cast', kind: 'broadcast', identity: null, outcome: 'result', body: { delivered: 1, failed: 0, nodes: 3 } }),
    // Hung while the node asked was frozen: not the library's fault.
    call({ tag: 'frozen', node: 'node-c', outcome: 'hung', answeredAt: null, status: null }),
  );
  records.outages.push({ node: 'node-c', kind: 'frozen', from: T0 + 9_000, to: T0 + 30_000 });
  records.receipts.push(
    { identity: 'CP1', tag: 'ok', at: T0 + 10_100, socket: 1, node: 'node-a' },
    { identity: 'CP1', tag: 'slow', at: T0 + 10_050, socket: 1, node: 'node-a' },
    { identity: 'CP1', tag: 'cast', at: T0 + 10_100, socket: 1, node: 'node-a' },
  );
  records.final = {
    at: T0 + 60_000,
    nodes: ['node-a', 'node-b', 'node-c'].map((node) => ({
      node,
      healthStatus: 200,
      healthBody: { status: 'ok' },
      presence: [{ identity: 'CP1', nodeId: 'node-a' }],
      rssBytes: 100 * 2 ** 20,
    })),
    openSockets: [{ identity: 'CP1', node: 'node-a', serial: 1 }],
    disconnected: [],
    rssLimitBytes: 400 * 2 ** 20,
  };
  return records;
}

interface Plant {
  name: string;
  expect: string | null;
  plant(records: RunRecords): void;
}

const receipt = (tag: string, at: number, socket = 1) => ({ identity: 'CP1', tag, at, socket, node: 'node-a' });

const PLANTS: Plant[] = [
  { name: 'timed-out call reaches the charger after the answer', expect: 'delivered-after-failure-answer', plant: (r) => r.calls.push(call({ tag: 'tmo', outcome: 'timeout-sent', status: 504, answeredAt: T0 + 14_000 })) && r.receipts.push(receipt('tmo', T0 + 14_500)) },
  { name: 'receipt within the clock tolerance after a failure answer', expect: null, plant: (r) => r.calls.push(call({ tag: 'edge', outcome: 'unavailable', status: 503, answeredAt: T0 + 10_200 })) && r.receipts.push(receipt('edge', T0 + 10_290)) },
  { name: 'NotConnected (not delivered) yet received', expect: 'delivered-though-answered-not-delivered', plant: (r) => r.receipts.push({ ...receipt('gone', T0 + 10_100), identity: 'CP2' }) },
  { name: 'NotConnected without maybeDelivered yet received', expect: 'delivered-though-answered-not-delivered', plant: (r) => r.calls.push(call({ tag: 'nc', identity: 'CP2', outcome: 'not-connected', status: 404, body: { error: 'NotConnected' } })) && r.receipts.push({ ...receipt('nc', T0 + 10_100), identity: 'CP2' }) },
  { name: 'NotConnected maybeDelivered received before the answer', expect: null, plant: (r) => r.calls.push(call({ tag: 'ncm', outcome: 'not-connected-maybe', status: 404 })) && r.receipts.push(receipt('ncm', T0 + 10_100)) },
  { name: 'timeout sent:false yet received', expect: 'delivered-though-answered-not-delivered', plant: (r) => r.calls.push(call({ tag: 'tns', outcome: 'timeout-not-sent', status: 504, answeredAt: T0 + 14_000 })) && r.receipts.push(receipt('tns', T0 + 11_000)) },
  { name: 'one command delivered twice', expect: 'delivered-twice', plant: (r) => r.receipts.push(receipt('ok', T0 + 10_150)) },
  { name: 'result without delivery', expect: 'result-without-delivery', plant: (r) => (r.receipts = r.receipts.filter((x) => x.tag !== 'ok')) },
  { name: 'result that is not the tag', expect: 'wrong-result', plant: (r) => ((r.calls[0].body as any).result.data = 'other') },
  { name: 'delivered to the wrong charger', expect: 'misrouted', plant: (r) => r.receipts.push({ ...receipt('ok', T0 + 10_100), identity: 'CP9' }) },
  { name: 'no answer from a running node', expect: 'answer-hung', plant: (r) => r.calls.push(call({ tag: 'h', outcome: 'hung', answeredAt: null, status: null })) },
  { name: 'connection lost on a running node', expect: 'answer-lost', plant: (r) => r.calls.push(call({ tag: 'l', outcome: 'lost', answeredAt: null, status: null })) },
  { name: 'answer far past the timeout', expect: 'answer-late', plant: (r) => r.calls.push(call({ tag: 'late', outcome: 'timeout-sent', status: 504, answeredAt: T0 + 20_000 })) },
  { name: 'definitive NotConnected for a steady socket', expect: 'not-connected-while-connected', plant: (r) => r.calls.push(call({ tag: 'ncc', outcome: 'not-connected', status: 404 })) },
  { name: 'NotConnected just after the charger began closing its socket', expect: null, plant: (r) => r.calls.push(call({ tag: 'ncb', identity: 'CP3', outcome: 'not-connected', status: 404, answeredAt: T0 + 10_004 })) && r.sockets.push({ serial: 3, identity: 'CP3', node: 'node-a', openedAt: T0, closedAt: T0 + 10_004, closeCode: 1000, closingAt: T0 + 10_000 }) },
  { name: 'NotConnected while a socket that later closed was still open', expect: 'not-connected-while-connected', plant: (r) => r.calls.push(call({ tag: 'ncl', identity: 'CP3', outcome: 'not-connected', status: 404, answeredAt: T0 + 10_004 })) && r.sockets.push({ serial: 3, identity: 'CP3', node: 'node-a', openedAt: T0, closedAt: T0 + 12_000, closeCode: 1000, closingAt: T0 + 12_000 }) },
  { name: 'NotConnected from a node taken over, which closes the socket with 1012 soon after', expect: null, plant: (r) => r.calls.push(call({ tag: 'nct', identity: 'CP3', outcome: 'not-connected', status: 404, answeredAt: T0 + 10_004 })) && r.sockets.push({ serial: 3, identity: 'CP3', node: 'node-a', openedAt: T0, closedAt: T0 + 10_500, closeCode: 1012 }) },
  { name: 'NotConnected from a node taken over; the charger rebooted just before its node closed the rest with 1012', expect: null, plant: (r) => r.calls.push(call({ tag: 'ncr', identity: 'CP3', outcome: 'not-connected', status: 404, answeredAt: T0 + 10_004 })) && r.sockets.push({ serial: 3, identity: 'CP3', node: 'node-a', openedAt: T0, closedAt: T0 + 11_001, closeCode: 1000, closingAt: T0 + 11_000 }, { serial: 4, identity: 'CP4', node: 'node-a', openedAt: T0, closedAt: T0 + 11_050, closeCode: 1012 }) },
  { name: 'NotConnected; the charger closed its socket later, its node closed nothing with 1012', expect: 'not-connected-while-connected', plant: (r) => r.calls.push(call({ tag: 'ncn', identity: 'CP3', outcome: 'not-connected', status: 404, answeredAt: T0 + 10_004 })) && r.sockets.push({ serial: 3, identity: 'CP3', node: 'node-a', openedAt: T0, closedAt: T0 + 11_001, closeCode: 1000, closingAt: T0 + 11_000 }, { serial: 4, identity: 'CP4', node: 'node-b', openedAt: T0, closedAt: T0 + 11_050, closeCode: 1012 }) },
  { name: 'shutdown answer "sent" and the command arrives before its deadline', expect: null, plant: (r) => r.calls.push(call({ tag: 'uas', outcome: 'unavailable-sent', status: 503, answeredAt: T0 + 10_100 })) && r.receipts.push(receipt('uas', T0 + 11_000)) },
  { name: 'shutdown answer "sent" and the command arrives after its deadline', expect: 'delivered-after-failure-answer', plant: (r) => r.calls.push(call({ tag: 'ual', outcome: 'unavailable-sent', status: 503, answeredAt: T0 + 10_100 })) && r.receipts.push(receipt('ual', T0 + 14_500)) },
  { name: 'answer long after the timeout from a node whose main thread was busy', expect: null, plant: (r) => r.calls.push(call({ tag: 'bl', node: 'node-b', outcome: 'timeout-sent', status: 504, answeredAt: T0 + 20_000 })) && r.outages.push({ node: 'node-b', kind: 'busy', from: T0 + 10_100, to: T0 + 19_000 }) },
  { name: 'shutdown answer "sent" from a node busy when asked: arrives within its deadline from then', expect: null, plant: (r) => r.calls.push(call({ tag: 'ubs', outcome: 'unavailable-sent', status: 503, answeredAt: T0 + 16_100 })) && r.outages.push({ node: 'node-b', kind: 'busy', from: T0 + 9_000, to: T0 + 16_000 }) && r.receipts.push(receipt('ubs', T0 + 17_000)) },
  { name: 'shutdown answer "sent" from a node busy when asked: arrives after its deadline from then', expect: 'delivered-after-failure-answer', plant: (r) => r.calls.push(call({ tag: 'ubl', outcome: 'unavailable-sent', status: 503, answeredAt: T0 + 16_100 })) && r.outages.push({ node: 'node-b', kind: 'busy', from: T0 + 9_000, to: T0 + 16_000 }) && r.receipts.push(receipt('ubl', T0 + 20_500)) },
  { name: 'definitive NotConnected for a charger whose node was busy (never taken over)', expect: 'not-connected-while-connected', plant: (r) => r.calls.push(call({ tag: 'ncbusy', outcome: 'not-connected', status: 404 })) && r.outages.push({ node: 'node-a', kind: 'busy', from: T0 + 9_000, to: T0 + 14_000 }) },
  { name: 'CallError the charger never sent', expect: 'unexpected-call-error', plant: (r) => r.calls.push(call({ tag: 'ce', outcome: 'call-error', status: 502 })) },
  { name: 'broadcast delivered after its deadline', expect: 'broadcast-after-deadline', plant: (r) => r.receipts.push(receipt('cast', T0 + 16_000, 2)) },
  { name: 'stale presence', expect: 'stale-presence', plant: (r) => r.final!.nodes[1].presence!.push({ identity: 'CP7', nodeId: 'node-c' }) },
  { name: 'missing presence', expect: 'missing-presence', plant: (r) => (r.final!.nodes[0].presence = []) },
  { name: 'two open sockets', expect: 'two-open-sockets', plant: (r) => r.final!.openSockets.push({ identity: 'CP1', node: 'node-b', serial: 5 }) },
  { name: 'node not ready', expect: 'node-not-ready', plant: (r) => (r.final!.nodes[2].healthStatus = 503) },
  { name: 'memory over the bound', expect: 'memory-bound', plant: (r) => (r.final!.nodes[2].rssBytes = 900 * 2 ** 20) },
];

export function runSelfTest(log: (line: string) => void): boolean {
  let ok = true;
  const clean = analyze(cleanRun(), SETTINGS).violations;
  if (clean.length > 0) {
    ok = false;
    log(`FAIL clean run: ${clean.map((v) => `[${v.kind}] ${v.detail}`).join('; ')}`);
  } else log('ok   clean run: no violation');
  for (const plant of PLANTS) {
    const records = cleanRun();
    plant.plant(records);
    const kinds = analyze(records, SETTINGS).violations.map((violation) => violation.kind);
    const pass = plant.expect === null ? kinds.length === 0 : kinds.length === 1 && kinds[0] === plant.expect;
    ok &&= pass;
    log(`${pass ? 'ok  ' : 'FAIL'} ${plant.name}: expected ${plant.expect ?? 'nothing'}, got ${kinds.join(', ') || 'nothing'}`);
  }
  return ok;
}

/**
 * Plants one fake late delivery into a real run's records (a copy) and returns the violation
 * kind the checker must then report: proof, on every run, that the checker still sees them.
 */
export function plantCanary(records: RunRecords): { records: RunRecords; expect: string; tag: string } | null {
  const victim = records.calls.find((c) => c.identity !== null && c.outcome === 'result' && c.answeredAt !== null);
  if (!victim) return null;
  const copy: RunRecords = { ...records, receipts: [...records.receipts] };
  copy.receipts.push({ identity: victim.identity!, tag: victim.tag, at: victim.answeredAt! + 5_000, socket: -1, node: 'canary' });
  return { records: copy, expect: 'delivered-twice', tag: victim.tag };
}
