/**
 * What the checker records during a run. Every time is `Date.now()` in the checker process (the
 * charge points and the HTTP callers live in the same process, so their clocks are one clock).
 */

export type FaultType =
  | 'kill9-node'
  | 'sigstop-node'
  | 'sigterm-drain'
  | 'redis-restart'
  | 'client-kill'
  | 'client-pause'
  | 'debug-sleep'
  | 'maxmemory'
  | 'master-kill'
  | 'nats-restart'
  | 'nats-server-kill'
  | 'nats-sigstop'
  | 'busy-node';

/** How the checker classifies one call's answer (from the HTTP status and body). */
export type OutcomeKind =
  | 'result'
  | 'not-connected'
  | 'not-connected-maybe'
  | 'timeout-sent'
  | 'timeout-not-sent'
  | 'timeout-unknown'
  | 'call-error'
  | 'unavailable'
  /** Unavailable, but the command was sent (the node asked stopped while it waited): it may arrive until its deadline. */
  | 'unavailable-sent'
  | 'queue-full'
  | 'bad-request'
  | 'internal-error'
  | 'other-http'
  /** The node refused the TCP connection: the request never reached it. */
  | 'refused'
  /** The connection broke before an answer came (the node asked died or closed it). */
  | 'lost'
  /** No answer within the caller's abort bound. */
  | 'hung';

export const FAILED_OUTCOMES: ReadonlySet<OutcomeKind> = new Set<OutcomeKind>([
  'not-connected',
  'not-connected-maybe',
  'timeout-sent',
  'timeout-not-sent',
  'timeout-unknown',
  'call-error',
  'unavailable',
  'queue-full',
  'bad-request',
  'internal-error',
  'other-http',
]);

/** One command to one charge point: a unicast call, or one identity of a broadcast-batch. A broadcast has `identity: null`. */
export interface CallRecord {
  seq: number;
  kind: 'call' | 'batch' | 'broadcast';
  /** Unique per HTTP request; carried in the DataTransfer `data`. */
  tag: string;
  identity: string | null;
  /** The node the HTTP request went to. */
  node: string;
  timeoutMs: number;
  sentAt: number;
  /** When the HTTP answer arrived; null when none came (refused, lost, hung). */
  answeredAt: number | null;
  status: number | null;
  /** The answer body (for a batch: this identity's entry). */
  body: unknown;
  outcome: OutcomeKind;
  /** For a broadcast-batch: the identities the answer listed, each how many times. */
  batchAnswerCounts?: Record<string, number>;
}

/** A DataTransfer frame a simulated charge point received. */
export interface Receipt {
  identity: string;
  tag: string;
  at: number;
  /** Serial of the socket it arrived on. */
  socket: number;
  node: string;
}

export interface SocketRecord {
  serial: number;
  identity: string;
  node: string;
  openedAt: number;
  closedAt: number | null;
  closeCode: number | null;
  /** When the charger itself began closing it (a reboot, a reconnect): from then on the node may see it gone before `closedAt`. */
  closingAt?: number;
}

/**
 * A node process being unable to serve: `killed` (SIGKILL until restarted), `frozen` (SIGSTOP),
 * `stopping` (SIGTERM until restarted), `busy` (its main thread in a synchronous loop; its other
 * threads, the lease keeper among them, run on).
 */
export interface NodeOutage {
  node: string;
  kind: 'killed' | 'frozen' | 'stopping' | 'busy';
  from: number;
  to: number | null;
}

export interface FaultRecord {
  type: FaultType;
  target: string;
  startedAt: number;
  /** When the fault was undone (node back, Redis back, pause over). */
  recoveredAt: number | null;
  detail: string;
}

/** Problems seen outside any call: failed restarts, slow shutdowns. */
export interface IncidentRecord {
  kind: string;
  at: number;
  detail: string;
}

export interface FinalNodeState {
  node: string;
  healthStatus: number | null;
  healthBody: unknown;
  /** `GET /chargers` from this node: identity → node id; null if the request failed. */
  presence: Array<{ identity: string; nodeId: string }> | null;
  rssBytes: number | null;
}

export interface FinalState {
  at: number;
  nodes: FinalNodeState[];
  /** Open sockets as the charge points see them. */
  openSockets: Array<{ identity: string; node: string; serial: number }>;
  /** Identities with no open socket at the end. */
  disconnected: string[];
  rssLimitBytes: number;
}

export interface RunRecords {
  calls: CallRecord[];
  receipts: Receipt[];
  sockets: SocketRecord[];
  outages: NodeOutage[];
  faults: FaultRecord[];
  incidents: IncidentRecord[];
  final: FinalState | null;
}

export interface CheckSettings {
  /** Clock tolerance between a charge point's receive time and a caller's answer time. */
  toleranceMs: number;
  /** An answer later than timeout + this is "hung" (unless the node asked was frozen or killed). */
  answerMarginMs: number;
  /** A socket open this long before a call counts as connected (for definitive NotConnected checks). */
  stableMs: number;
  /** How long after a fault's recovery calls still count towards it. */
  faultSettleMs: number;
}

export function emptyRecords(): RunRecords {
  return { calls: [], receipts: [], sockets: [], outages: [], faults: [], incidents: [], final: null };
}
