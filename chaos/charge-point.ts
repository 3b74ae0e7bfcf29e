import WebSocket from 'ws';
import type { Rng } from './rng.js';
import type { RunRecords, SocketRecord } from './records.js';

export type ChargerProtocol = 'ocpp1.6' | 'ocpp2.0.1';

/** Where a charge point may connect (the node list changes state, not URLs). */
export interface NodeDirectory {
  /** Node ids that are worth a connect attempt now. */
  connectable(): string[];
  wsUrl(nodeId: string): string;
}

export const CHAOS_VENDOR = 'chaos';

let socketSerial = 0;

interface OpenSocket {
  ws: WebSocket;
  record: SocketRecord;
}

/**
 * A simulated charge point on a raw `ws` socket. It boots, heartbeats now and then, answers
 * DataTransfer after a short delay (echoing `data`; a fifth of them are slow), and records each DataTransfer it receives. When its
 * current socket closes it reconnects to a random node after a short backoff. `move()` opens a
 * new socket on another node and leaves the old one open: the cluster must close the older one.
 */
export class ChargePoint {
  /** Sockets open on our side; the last opened is the current one. */
  private readonly open = new Set<OpenSocket>();
  private current: OpenSocket | null = null;
  private connecting = false;
  private stopped = false;
  private failures = 0;
  private messageId = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  /** A slow charger keeps calls queued behind each other on its node (one CALL in flight at a time). */
  private readonly slow: boolean;

  constructor(
    readonly identity: string,
    readonly protocol: ChargerProtocol,
    private readonly nodes: NodeDirectory,
    private readonly records: RunRecords,
    private readonly rng: Rng,
  ) {
    this.slow = rng.chance(0.2);
  }

  get connected(): boolean {
    return this.current !== null;
  }

  get currentNode(): string | null {
    return this.current?.record.node ?? null;
  }

  openSockets(): Array<{ identity: string; node: string; serial: number }> {
    return [...this.open].map(({ record }) => ({ identity: this.identity, node: record.node, serial: record.serial }));
  }

  connect(nodeId?: string, boot = true): void {
    if (this.stopped || this.connecting) return;
    const candidates = this.nodes.connectable();
    const target = nodeId ?? (candidates.length > 0 ? this.rng.pick(candidates) : undefined);
    if (!target) return this.scheduleReconnect();
    this.connecting = true;
    const ws = new WebSocket(`${this.nodes.wsUrl(target)}/${this.identity}`, [this.protocol], { handshakeTimeout: 5_000 });
    const record: SocketRecord = { serial: ++socketSerial, identity: this.identity, node: target, openedAt: 0, closedAt: null, closeCode: null };
    let opened = false;
    const entry: OpenSocket = { ws, record };
    ws.on('open', () => {
      opened = true;
      this.connecting = false;
      this.failures = 0;
      record.openedAt = Date.now();
      this.records.sockets.push(record);
      this.open.add(entry);
      this.current = entry;
      if (boot) this.send(entry, 'BootNotification', this.bootPayload());
      this.scheduleHeartbeat();
    });
    ws.on('message', (data) => this.onMessage(entry, data.toString()));
    ws.on('error', () => undefined);
    ws.on('close', (code) => {
      if (!opened) {
        this.connecting = false;
        this.failures++;
        this.scheduleReconnect();
        return;
      }
      record.closedAt = Date.now();
      record.closeCode = code;
      this.open.delete(entry);
      if (this.current === entry) {
        this.current = null;
        this.scheduleReconnect();
      }
    });
  }

  /** A clean reconnect to the same node (no boot). */
  reconnect(): void {
    const node = this.currentNode;
    if (!this.current || !node) return;
    const entry = this.current;
    this.current = null;
    entry.ws.once('close', () => this.connect(node, false));
    entry.record.closingAt = Date.now();
    entry.ws.close(1000);
  }

  /** A reboot: close, connect to any node, BootNotification. */
  reboot(): void {
    if (!this.current) return;
    const entry = this.current;
    this.current = null;
    entry.ws.once('close', () => this.connect(undefined, true));
    entry.record.closingAt = Date.now();
    entry.ws.close(1000);
  }

  /** Connects to another node while the old socket stays open (the cluster must close it). */
  move(): void {
    const from = this.currentNode;
    const others = this.nodes.connectable().filter((node) => node !== from);
    if (!from || others.length === 0) return;
    this.connect(this.rng.pick(others), false);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.heartbeatTimer);
    for (const { ws } of this.open) ws.terminate();
  }

  private onMessage(entry: OpenSocket, text: string): void {
    let frame: unknown;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (!Array.isArray(frame) || frame[0] !== 2) return; // our own calls' answers: nothing to do
    const [, id, action, payload] = frame as [number, string, string, Record<string, unknown>];
    if (action === 'DataTransfer' && payload?.vendorId === CHAOS_VENDOR && typeof payload.data === 'string') {
      this.records.receipts.push({ identity: this.identity, tag: payload.data, at: Date.now(), socket: entry.record.serial, node: entry.record.node });
      const answer = [3, id, { status: 'Accepted', data: payload.data }];
      setTimeout(() => this.reply(entry, answer), this.slow ? this.rng.int(300, 1_200) : this.rng.int(0, 100));
    } else {
      this.reply(entry, [4, id, 'NotImplemented', `chaos charger does not do ${action}`, {}]);
    }
  }

  private send(entry: OpenSocket, action: string, payload: Record<string, unknown>): void {
    this.reply(entry, [2, `cp${++this.messageId}`, action, payload]);
  }

  private reply(entry: OpenSocket, frame: unknown[]): void {
    if (entry.ws.readyState === WebSocket.OPEN) entry.ws.send(JSON.stringify(frame));
  }

  private bootPayload(): Record<string, unknown> {
    return this.protocol === 'ocpp1.6'
      ? { chargePointVendor: 'Chaos', chargePointModel: 'Monkey' }
      : { reason: 'PowerUp', chargingStation: { vendorName: 'Chaos', model: 'Monkey' } };
  }

  private scheduleHeartbeat(): void {
    clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = setTimeout(() => {
      if (this.current) this.send(this.current, 'Heartbeat', {});
      if (!this.stopped) this.scheduleHeartbeat();
    }, this.rng.int(15_000, 30_000));
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    clearTimeout(this.reconnectTimer);
    const backoff = Math.min(3_000, 200 * 2 ** Math.min(this.failures, 4)) + this.rng.int(0, 500);
    this.reconnectTimer = setTimeout(() => this.connect(), backoff);
  }
}
