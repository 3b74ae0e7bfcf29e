import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { WebSocket } from 'ws';
import { ConfigStore } from './config-store.js';
import {
  bootNotification16,
  handleCommand16,
  meterValues16,
  startTransaction16,
  statusNotification16,
  stopTransaction16,
} from './ocpp16.js';
import {
  bootNotification2,
  handleCommand2,
  idToken2,
  meterValues2,
  notifyReport2,
  statusNotification2,
  transactionEvent2,
} from './ocpp2.js';
import type { FleetStats } from './stats.js';
import type { CommandResult, OcppProtocol, Payload, StationControl, Transaction } from './types.js';

export interface BackoffOptions {
  /** First wait after a failed or lost connection. */
  minMs: number;
  /** Cap of the doubling wait. */
  maxMs: number;
  /** Random extra wait added to every retry, 0..jitterMs (keeps a fleet from reconnecting in lockstep). */
  jitterMs: number;
}

export interface StationOptions {
  /** Full endpoint of this station, identity included. */
  url: string;
  /** Other endpoints (identity included) tried in turn after a lost or failed connection, as behind a load balancer. */
  fallbackUrls?: string[];
  identity: string;
  protocol: OcppProtocol;
  /** Basic auth (security profile 1): user = identity. */
  password?: string;
  /** Overrides the interval the CSMS gives in its BootNotification answer. */
  heartbeatSeconds?: number;
  /** Mean transaction starts per minute per station (Poisson); 0 = none. */
  txPerMinute: number;
  txDurationSeconds: number;
  /** Meter values per minute during a transaction; 0 = none. */
  meterValuesPerMinute: number;
  callTimeoutMs: number;
  backoff: BackoffOptions;
  connectors: number;
  /** Offer permessage-deflate. */
  deflate: boolean;
  /** Source address of the socket (e.g. 127.0.1.2); see FleetOptions.localAddresses. */
  localAddress?: string;
}

/** A CALL of ours, queued or in flight. */
interface OutboundCall {
  id: string;
  action: string;
  payload: Payload;
  sentAt: number;
  onResult?: (payload: Payload, latencyMs: number) => void;
  onError?: (code: string, description: string) => void;
}

/** How a station came back after its socket was lost (epoch ms, comparable across processes). */
export interface StationRecovery {
  /** When the socket was lost (closed while we wanted it open). */
  lostAt: number;
  /** Connections tried since. */
  attempts: number;
  /** Why those attempts failed, in order. */
  failures: string[];
  /** When a socket opened again (null: not yet). */
  openedAt: number | null;
  /** How long that socket's opening handshake took (the CSMS claims the station's presence in it). */
  handshakeMs: number | null;
  /** When its BootNotification was accepted on it (null: not yet). */
  bootedAt: number | null;
}

/** Run-wide state of a flood: every station sends `action` back to back. */
export interface FloodState {
  action: string;
  payload: Payload;
  running: boolean;
  onReply(latencyMs: number): void;
  onFailure(): void;
}

const WS_OPEN = 1;
const CHARGING_POWER_W = 11_000;
const DEFAULT_RETRY_SECONDS = 10;

let callCounter = 0;
/** Ids unique within this process: short base-36 counters. */
const nextCallId = (): string => (++callCounter).toString(36);

type Timer = ReturnType<typeof setTimeout>;

/**
 * One charge point on a raw `ws` socket: boot, heartbeat, status, optional transactions, answers
 * to every CSMS command, and reconnection with exponential backoff and jitter. OCPP-J framing:
 * at most one CALL of ours in flight; CSMS calls are answered at once, whatever is in flight.
 */
export class Station implements StationControl {
  readonly identity: string;
  readonly protocol: OcppProtocol;
  readonly connectors: number;
  readonly config: ConfigStore;
  booted = false;

  private ws: WebSocket | null = null;
  private opened = false;
  private stopping = false;
  private started = false;
  private attempt = 0;
  private rebootReason: string | null = null;
  private queue: OutboundCall[] = [];
  private inflight: OutboundCall | null = null;
  private heartbeatTimer: Timer | null = null;
  private reconnectTimer: Timer | null = null;
  /** Which of url and fallbackUrls the next connection goes to. */
  private urlIndex = 0;
  private bootRetryTimer: Timer | null = null;
  private txTimer: Timer | null = null;
  private readonly transactions = new Map<number, Transaction & { meterTimer?: Timer; stopTimer?: Timer }>();
  private readonly energyWh: number[];
  private flood: FloodState | null = null;
  private closeWaiters: Array<() => void> = [];
  /** The last loss of the socket and how the station came back from it (null: never lost). */
  private lastRecovery: StationRecovery | null = null;
  /** When the current connection attempt started (epoch ms). */
  private connectStartedAt = 0;

  constructor(
    private readonly options: StationOptions,
    private readonly stats: FleetStats,
  ) {
    this.identity = options.identity;
    this.protocol = options.protocol;
    this.connectors = options.connectors;
    this.config = new ConfigStore(options.connectors);
    const meterInterval = options.meterValuesPerMinute > 0 ? Math.max(1, Math.round(60 / options.meterValuesPerMinute)) : 0;
    this.config.get('MeterValueSampleInterval')!.value = String(meterInterval);
    this.energyWh = Array.from({ length: options.connectors + 1 }, () => Math.floor(Math.random() * 1_000_000));
  }

  get recovery(): Readonly<StationRecovery> | null {
    return this.lastRecovery;
  }

  get isOpen(): boolean {
    return this.ws !== null && this.ws.readyState === WS_OPEN;
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.connect();
  }

  /** Closes with 1000 and stops reconnecting; resolves once the socket is closed (terminated after `timeoutMs`). */
  stop(timeoutMs = 3000): Promise<void> {
    this.stopping = true;
    this.flood = null;
    this.clearTimers();
    clearTimeout(this.reconnectTimer ?? undefined);
    const ws = this.ws;
    if (!ws) return Promise.resolve();
    return new Promise((resolve) => {
      this.closeWaiters.push(resolve);
      const timer = setTimeout(() => ws.terminate(), timeoutMs);
      timer.unref();
      if (ws.readyState === WS_OPEN) ws.close(1000, 'simulator stopped');
      else ws.terminate();
    });
  }

  /** Queues a CALL; at most one is in flight. */
  call(
    action: string,
    payload: Payload,
    onResult?: (payload: Payload, latencyMs: number) => void,
    onError?: (code: string, description: string) => void,
  ): void {
    const call: OutboundCall = { id: '', action, payload, sentAt: 0, onResult, onError };
    if (action === 'BootNotification') this.queue.unshift(call);
    else this.queue.push(call);
    this.pump();
  }

  /** Fails the CALL in flight once it is older than the call timeout (the fleet sweeps all stations). */
  checkTimeout(now: number): void {
    const call = this.inflight;
    if (!call || now - call.sentAt < this.options.callTimeoutMs) return;
    this.inflight = null;
    this.stats.timeouts++;
    this.stats.noteError(`timeout: ${call.action}`);
    call.onError?.('Timeout', `no answer within ${this.options.callTimeoutMs} ms`);
    this.pump();
  }

  startFlood(flood: FloodState): void {
    this.flood = flood;
    this.floodOnce();
  }

  // ---------------------------------------------------------------- connection

  private connect(): void {
    if (this.stopping) return;
    const headers: Record<string, string> = {};
    if (this.options.password !== undefined) {
      headers.authorization = `Basic ${Buffer.from(`${this.identity}:${this.options.password}`).toString('base64')}`;
    }
    this.opened = false;
    if (this.lastRecovery?.openedAt === null) this.lastRecovery.attempts++;
    this.connectStartedAt = Date.now();
    const urls = [this.options.url, ...(this.options.fallbackUrls ?? [])];
    const ws = new WebSocket(urls[this.urlIndex % urls.length], [this.protocol], {
      headers,
      perMessageDeflate: this.options.deflate,
      localAddress: this.options.localAddress,
      handshakeTimeout: 30_000,
      followRedirects: false,
    });
    this.ws = ws;
    ws.on('open', () => this.onOpen(ws));
    ws.on('message', (data, isBinary) => {
      if (this.ws === ws) this.onMessage(data.toString(), isBinary);
    });
    ws.on('error', (error) => {
      if (!this.opened) {
        this.stats.connectFailures++;
        this.stats.noteError(`connect: ${error.message}`);
        if (this.lastRecovery?.openedAt === null) this.lastRecovery.failures.push(error.message);
      } else {
        this.stats.noteError(`socket: ${error.message}`);
      }
    });
    ws.on('close', (code) => this.onClose(ws, code));
  }

  private onOpen(ws: WebSocket): void {
    if (this.ws !== ws) return;
    this.opened = true;
    this.stats.connected++;
    this.stats.opens++;
    if (this.lastRecovery?.openedAt === null) {
      this.lastRecovery.openedAt = Date.now();
      this.lastRecovery.handshakeMs = this.lastRecovery.openedAt - this.connectStartedAt;
    }
    if (ws.protocol !== this.protocol) {
      this.stats.protocolErrors++;
      this.stats.noteError(`subprotocol: asked ${this.protocol}, got ${ws.protocol || 'none'}`);
      ws.close(1002, 'subprotocol mismatch');
      return;
    }
    this.boot();
  }

  private onClose(ws: WebSocket, code: number): void {
    if (this.ws !== ws) return;
    this.ws = null;
    if (this.opened) this.stats.connected--;
    if (this.booted) this.stats.booted--;
    this.booted = false;
    this.clearTimers();
    const lost = this.inflight;
    this.inflight = null;
    const queued = this.queue;
    this.queue = [];
    lost?.onError?.('ConnectionClosed', 'socket closed');
    for (const call of queued) call.onError?.('ConnectionClosed', 'socket closed');
    this.dropTransactions();
    if (this.stopping) {
      const waiters = this.closeWaiters;
      this.closeWaiters = [];
      for (const resolve of waiters) resolve();
      return;
    }
    if (this.opened && this.rebootReason === null) {
      this.stats.unexpectedCloses++;
      this.stats.noteError(`closed by the CSMS: ${code}`);
      this.noteLoss(code);
    }
    const delay = this.rebootReason !== null ? 1000 : this.backoffDelay();
    if (this.rebootReason === null) this.urlIndex++;
    this.reconnectTimer = setTimeout(() => {
      this.stats.reconnects++;
      this.connect();
    }, delay);
  }

  /** A new recovery starts at a loss after the last one completed; a socket lost again before its boot continues it. */
  private noteLoss(code: number): void {
    const recovery = this.lastRecovery;
    if (recovery === null || recovery.bootedAt !== null) {
      this.lastRecovery = { lostAt: Date.now(), attempts: 0, failures: [], openedAt: null, handshakeMs: null, bootedAt: null };
    } else {
      recovery.openedAt = null;
      recovery.handshakeMs = null;
      recovery.failures.push(`closed before boot: ${code}`);
    }
  }

  /** OCPP 2.x style: min · 2^attempt, capped, plus a random 0..jitter. */
  private backoffDelay(): number {
    const { minMs, maxMs, jitterMs } = this.options.backoff;
    const base = Math.min(maxMs, minMs * 2 ** Math.min(this.attempt, 20));
    this.attempt++;
    return base + Math.random() * jitterMs;
  }

  // ---------------------------------------------------------------- framing

  private send(frame: string): void {
    if (this.ws && this.ws.readyState === WS_OPEN) this.ws.send(frame);
  }

  private pump(): void {
    if (this.inflight || this.queue.length === 0 || !this.isOpen) return;
    const next = this.queue[0];
    // Nothing but BootNotification before the CSMS accepted us.
    if (!this.booted && next.action !== 'BootNotification') return;
    this.queue.shift();
    next.id = nextCallId();
    next.sentAt = performance.now();
    this.inflight = next;
    this.send(JSON.stringify([2, next.id, next.action, next.payload]));
  }

  private onMessage(text: string, isBinary: boolean): void {
    let message: unknown;
    try {
      message = isBinary ? undefined : JSON.parse(text);
    } catch {
      message = undefined;
    }
    if (!Array.isArray(message) || typeof message[1] !== 'string') {
      this.stats.protocolErrors++;
      this.stats.noteError('malformed frame from the CSMS');
      return;
    }
    switch (message[0]) {
      case 2:
        this.onCall(message[1], message[2], message[3]);
        return;
      case 3:
        this.onResult(message[1], message[2]);
        return;
      case 4:
      case 5: // 2.1 CALLRESULTERROR: the CSMS could not process our CALLRESULT
        this.onError(message[1], message[2], message[3]);
        return;
      case 6: // 2.1 SEND: never answered
        if (typeof message[2] === 'string') this.stats.noteInbound(message[2]);
        return;
      default:
        this.stats.protocolErrors++;
        this.stats.noteError(`unknown message type ${String(message[0])}`);
    }
  }

  private onCall(id: string, action: unknown, payload: unknown): void {
    if (typeof action !== 'string' || payload === null || typeof payload !== 'object' || Array.isArray(payload)) {
      const code = this.protocol === 'ocpp1.6' ? 'FormationViolation' : 'FormatViolation';
      this.send(JSON.stringify([4, id, code, 'CALL must be [2, id, action, {payload}]', {}]));
      return;
    }
    this.stats.noteInbound(action);
    let result: CommandResult;
    try {
      result =
        this.protocol === 'ocpp1.6' ? handleCommand16(this, action, payload as Payload) : handleCommand2(this, action, payload as Payload);
    } catch (error) {
      result = { error: 'InternalError', description: String((error as Error)?.message ?? error).slice(0, 200) };
    }
    if ('error' in result) {
      this.send(JSON.stringify([4, id, result.error, result.description, {}]));
      return;
    }
    this.send(JSON.stringify([3, id, result.payload]));
    result.after?.();
  }

  private onResult(id: string, payload: unknown): void {
    const call = this.inflight;
    if (!call || call.id !== id) {
      this.stats.protocolErrors++;
      this.stats.noteError('CALLRESULT for no call in flight');
      return;
    }
    this.inflight = null;
    this.stats.callsOut++;
    const latency = performance.now() - call.sentAt;
    this.stats.callLatency.record(latency);
    call.onResult?.(payload !== null && typeof payload === 'object' ? (payload as Payload) : {}, latency);
    this.pump();
  }

  private onError(id: string, code: unknown, description: unknown): void {
    const call = this.inflight;
    if (!call || call.id !== id) {
      this.stats.protocolErrors++;
      this.stats.noteError('CALLERROR for no call in flight');
      return;
    }
    this.inflight = null;
    this.stats.callErrors++;
    this.stats.noteError(`CALLERROR ${String(code)} on ${call.action}`);
    call.onError?.(String(code), String(description));
    this.pump();
  }

  // ---------------------------------------------------------------- boot and heartbeat

  private boot(): void {
    const payload =
      this.protocol === 'ocpp1.6'
        ? bootNotification16(this.identity)
        : bootNotification2(this.identity, this.rebootReason === null ? 'PowerUp' : 'RemoteReset');
    this.call(
      'BootNotification',
      payload,
      (reply) => this.onBootReply(reply),
      (code) => {
        if (code !== 'ConnectionClosed') this.retryBoot(DEFAULT_RETRY_SECONDS);
      },
    );
  }

  private onBootReply(reply: Payload): void {
    const interval = typeof reply.interval === 'number' && reply.interval > 0 ? reply.interval : 0;
    if (reply.status !== 'Accepted') {
      this.retryBoot(interval || DEFAULT_RETRY_SECONDS);
      return;
    }
    const fresh = !this.booted;
    if (fresh) this.stats.booted++;
    this.booted = true;
    if (this.lastRecovery?.bootedAt === null) this.lastRecovery.bootedAt = Date.now();
    this.attempt = 0;
    this.rebootReason = null;
    const heartbeat = this.options.heartbeatSeconds ?? (interval || Number(this.config.get('HeartbeatInterval')!.value));
    this.config.get('HeartbeatInterval')!.value = String(heartbeat);
    this.startHeartbeat(true);
    this.sendAllStatuses();
    this.scheduleTransaction();
    this.pump();
    if (fresh && this.flood) this.floodOnce();
  }

  private retryBoot(seconds: number): void {
    clearTimeout(this.bootRetryTimer ?? undefined);
    this.bootRetryTimer = setTimeout(() => {
      if (this.isOpen) this.boot();
    }, seconds * 1000);
  }

  private startHeartbeat(randomFirst: boolean): void {
    clearTimeout(this.heartbeatTimer ?? undefined);
    const seconds = Number(this.config.get('HeartbeatInterval')!.value);
    if (!(seconds > 0)) return;
    const tick = (): void => {
      this.call('Heartbeat', {});
      this.heartbeatTimer = setTimeout(tick, seconds * 1000);
    };
    // Spread a fleet's heartbeats over the interval instead of sending them all at once.
    this.heartbeatTimer = setTimeout(tick, (randomFirst ? Math.random() : 1) * seconds * 1000);
  }

  private sendStatus(connectorId: number): void {
    if (this.protocol === 'ocpp1.6') {
      const status = connectorId > 0 && this.transactions.has(connectorId) ? 'Charging' : 'Available';
      this.call('StatusNotification', statusNotification16(connectorId, status));
    } else {
      const status = this.transactions.has(connectorId) ? 'Occupied' : 'Available';
      this.call('StatusNotification', statusNotification2(connectorId, status));
    }
  }

  private sendAllStatuses(): void {
    if (this.protocol === 'ocpp1.6') this.sendStatus(0);
    for (let connectorId = 1; connectorId <= this.connectors; connectorId++) this.sendStatus(connectorId);
  }

  // ---------------------------------------------------------------- transactions

  private meterReading(connectorId: number): number {
    const transaction = this.transactions.get(connectorId);
    if (!transaction) return this.energyWh[connectorId];
    return transaction.meterStartWh + ((Date.now() - transaction.startedAt) / 3_600_000) * CHARGING_POWER_W;
  }

  private scheduleTransaction(): void {
    clearTimeout(this.txTimer ?? undefined);
    if (!(this.options.txPerMinute > 0)) return;
    // Exponential gaps: transaction starts form a Poisson process of the requested rate.
    const delayMs = (-Math.log(1 - Math.random()) * 60_000) / this.options.txPerMinute;
    this.txTimer = setTimeout(() => {
      const connectorId = this.freeConnector();
      if (connectorId !== null && this.booted) this.beginTransaction(connectorId, randomIdTag(), true);
      this.scheduleTransaction();
    }, delayMs);
  }

  freeConnector(preferred?: number): number | null {
    if (preferred !== undefined) {
      return preferred >= 1 && preferred <= this.connectors && !this.transactions.has(preferred) ? preferred : null;
    }
    for (let connectorId = 1; connectorId <= this.connectors; connectorId++) {
      if (!this.transactions.has(connectorId)) return connectorId;
    }
    return null;
  }

  findTransaction(id: unknown): Transaction | undefined {
    for (const transaction of this.transactions.values()) if (transaction.id === id && id !== null) return transaction;
    return undefined;
  }

  startTransaction(connectorId: number, idTag: string, remoteStartId?: number): boolean {
    if (!this.booted || this.transactions.has(connectorId)) return false;
    this.beginTransaction(connectorId, idTag, false, remoteStartId);
    return true;
  }

  private beginTransaction(connectorId: number, idTag: string, authorize: boolean, remoteStartId?: number): void {
    const transaction: Transaction = {
      id: this.protocol === 'ocpp1.6' ? null : `${randomBytes(8).toString('hex')}-${connectorId}`,
      connectorId,
      idTag,
      meterStartWh: Math.round(this.energyWh[connectorId]),
      startedAt: Date.now(),
      seqNo: 0,
      remoteStartId,
    };
    this.transactions.set(connectorId, transaction);
    const go = (): void => (this.protocol === 'ocpp1.6' ? this.start16(transaction) : this.start2(transaction, authorize));
    if (!authorize) {
      go();
      return;
    }
    const request = this.protocol === 'ocpp1.6' ? { idTag } : { idToken: idToken2(idTag) };
    this.call('Authorize', request, (reply) => {
      const info = (reply.idTagInfo ?? reply.idTokenInfo) as { status?: string } | undefined;
      if (info?.status === 'Accepted' && this.transactions.get(connectorId) === transaction) go();
      else this.transactions.delete(connectorId);
    });
  }

  private start16(transaction: Transaction): void {
    this.call('StartTransaction', startTransaction16(transaction), (reply) => {
      if (this.transactions.get(transaction.connectorId) !== transaction) return;
      transaction.id = typeof reply.transactionId === 'number' ? reply.transactionId : null;
      this.sendStatus(transaction.connectorId);
      this.runTransaction(transaction);
    });
  }

  private start2(transaction: Transaction, authorized: boolean): void {
    const trigger = transaction.remoteStartId !== undefined ? 'RemoteStart' : authorized ? 'Authorized' : 'CablePluggedIn';
    this.call('TransactionEvent', transactionEvent2(transaction, 'Started', trigger, transaction.meterStartWh));
    this.sendStatus(transaction.connectorId);
    this.runTransaction(transaction);
  }

  private runTransaction(transaction: Transaction & { meterTimer?: Timer; stopTimer?: Timer }): void {
    const meterSeconds = Number(this.config.get('MeterValueSampleInterval')!.value);
    if (meterSeconds > 0) {
      transaction.meterTimer = setInterval(() => this.sendTransactionMeterValue(transaction), meterSeconds * 1000);
    }
    transaction.stopTimer = setTimeout(() => this.stopTransaction(transaction, 'Local'), this.options.txDurationSeconds * 1000);
  }

  private sendTransactionMeterValue(transaction: Transaction): void {
    const energy = this.meterReading(transaction.connectorId);
    if (this.protocol === 'ocpp1.6') {
      this.call('MeterValues', meterValues16(transaction.connectorId, (transaction.id as number | null) ?? undefined, energy));
    } else {
      this.call('TransactionEvent', transactionEvent2(transaction, 'Updated', 'MeterValuePeriodic', energy));
    }
  }

  stopTransaction(transaction: Transaction & { meterTimer?: Timer; stopTimer?: Timer }, reason: string): void {
    if (this.transactions.get(transaction.connectorId) !== transaction) return;
    clearInterval(transaction.meterTimer);
    clearTimeout(transaction.stopTimer);
    const energy = this.meterReading(transaction.connectorId);
    this.energyWh[transaction.connectorId] = energy;
    this.transactions.delete(transaction.connectorId);
    if (this.protocol === 'ocpp1.6') {
      if (transaction.id !== null) this.call('StopTransaction', stopTransaction16(transaction, energy, reason));
    } else {
      const trigger = reason === 'Remote' ? 'RemoteStop' : 'StopAuthorized';
      this.call('TransactionEvent', transactionEvent2(transaction, 'Ended', trigger, energy, reason));
    }
    this.sendStatus(transaction.connectorId);
  }

  /** A lost socket ends the station's transactions here (a real one would queue their messages). */
  private dropTransactions(): void {
    for (const transaction of this.transactions.values()) {
      clearInterval((transaction as { meterTimer?: Timer }).meterTimer);
      clearTimeout((transaction as { stopTimer?: Timer }).stopTimer);
      this.energyWh[transaction.connectorId] = this.meterReading(transaction.connectorId);
    }
    this.transactions.clear();
  }

  // ---------------------------------------------------------------- commands' side effects

  trigger(message: string, connectorId?: number): boolean {
    const connectors = connectorId !== undefined ? [connectorId] : Array.from({ length: this.connectors }, (_, i) => i + 1);
    switch (message) {
      case 'BootNotification':
        this.boot();
        return true;
      case 'Heartbeat':
        this.call('Heartbeat', {});
        return true;
      case 'StatusNotification':
        if (connectorId === undefined) this.sendAllStatuses();
        else this.sendStatus(connectorId);
        return true;
      case 'MeterValues':
        for (const id of connectors) {
          const transaction = this.transactions.get(id);
          if (this.protocol === 'ocpp1.6') {
            this.call('MeterValues', meterValues16(id, (transaction?.id as number | null | undefined) ?? undefined, this.meterReading(id)));
          } else {
            this.call('MeterValues', meterValues2(id, this.meterReading(id)));
          }
        }
        return true;
      case 'FirmwareStatusNotification':
      case 'DiagnosticsStatusNotification':
      case 'LogStatusNotification':
        this.call(message, { status: 'Idle' });
        return true;
      default:
        return false;
    }
  }

  reboot(reason: string): void {
    this.rebootReason = reason;
    const ws = this.ws;
    // Let the CALLRESULT leave before the socket goes.
    setTimeout(() => {
      if (this.ws === ws && ws) ws.close(1012, 'rebooting');
    }, 100);
  }

  applyConfiguration(key: string): void {
    if (key === 'HeartbeatInterval' && this.booted) this.startHeartbeat(false);
  }

  sendReport(requestId: number): void {
    this.call('NotifyReport', notifyReport2(this, requestId));
  }

  // ---------------------------------------------------------------- flood

  private floodOnce(): void {
    const flood = this.flood;
    if (!flood || !flood.running || !this.booted) return;
    this.call(
      flood.action,
      flood.payload,
      (_reply, latencyMs) => {
        flood.onReply(latencyMs);
        this.floodOnce();
      },
      (code) => {
        flood.onFailure();
        // A lost socket resumes the flood after the next boot.
        if (code !== 'ConnectionClosed') this.floodOnce();
      },
    );
  }

  private clearTimers(): void {
    clearTimeout(this.heartbeatTimer ?? undefined);
    clearTimeout(this.bootRetryTimer ?? undefined);
    clearTimeout(this.txTimer ?? undefined);
    this.heartbeatTimer = this.bootRetryTimer = this.txTimer = null;
  }
}

function randomIdTag(): string {
  return `TAG${randomBytes(4).toString('hex').toUpperCase()}`;
}
