import { WebSocket } from 'ws';
import { withTimeout } from './wait.js';

/** A CALL frame a charger received, with when it arrived (this process's clock). */
export interface ReceivedCall {
  messageId: string;
  action: string;
  payload: Record<string, unknown>;
  at: number;
}

/**
 * A raw OCPP 1.6 charge point that records every CALL it receives (for "did this command ever
 * reach a charger, and when") and answers DataTransfer after `replyDelayMs`, or never.
 */
export class RecordingCharger {
  readonly received: ReceivedCall[] = [];
  closeCode: number | null = null;
  readonly closed: Promise<number>;

  private constructor(
    readonly identity: string,
    private readonly socket: WebSocket,
    private readonly replyDelayMs: number | null,
  ) {
    this.closed = new Promise((resolve) =>
      socket.once('close', (code) => {
        this.closeCode = code;
        resolve(code);
      }),
    );
    socket.on('message', (data) => this.onMessage(data.toString()));
  }

  /**
   * Connects; a refused upgrade (e.g. 503) fails at once with the status. It listens before the
   * socket opens: a CALL that arrives with the 101 (a caller waited for this socket) is emitted
   * before the await of 'open' resumes, and would be lost.
   */
  static async connect(wsUrl: string, identity: string, replyDelayMs: number | null = 0): Promise<RecordingCharger> {
    const socket = new WebSocket(`${wsUrl}/${encodeURIComponent(identity)}`, 'ocpp1.6');
    const charger = new RecordingCharger(identity, socket, replyDelayMs);
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        socket.once('open', () => resolve());
        socket.once('error', reject);
        socket.once('unexpected-response', (_request, response) => reject(new Error(`${identity}: HTTP ${response.statusCode}`)));
      }),
      10_000,
      `${identity} to connect`,
    );
    return charger;
  }

  get isOpen(): boolean {
    return this.socket.readyState === WebSocket.OPEN;
  }

  /** Tags (DataTransfer `data`) this charger received. */
  tags(): string[] {
    return this.received.map((call) => String(call.payload.data));
  }

  close(): void {
    this.socket.terminate();
  }

  private onMessage(text: string): void {
    let frame: unknown;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (!Array.isArray(frame) || frame[0] !== 2) return;
    const [, messageId, action, payload] = frame as [number, string, string, Record<string, unknown>];
    this.received.push({ messageId, action, payload, at: Date.now() });
    if (this.replyDelayMs === null) return;
    const answer = () => {
      if (this.isOpen) this.socket.send(JSON.stringify([3, messageId, { status: 'Accepted', data: payload?.data }]));
    };
    if (this.replyDelayMs === 0) answer();
    else setTimeout(answer, this.replyDelayMs);
  }
}
