import { afterEach, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { RawChargePoint } from '../support/charge-point.js';
import { openAnsweringCharger } from '../support/cluster-node.js';
import { RecordingCharger } from '../support/recording-charger.js';
import { waitFor } from '../support/wait.js';

/**
 * The test chargers must see a CALL that reaches them together with the upgrade response. A node
 * with a caller waiting for this socket sends it right after the 101; a busy test process then
 * reads both in one chunk. ws emits 'open', and the frame on the next tick, before the awaiting
 * promise continuation runs: a listener attached after `await open` misses it, the charger never
 * answers, and the caller times out "sent, no answer" (the not-connected-proof flake). Made
 * exact: a raw server writes the 101 and the frame in one write.
 */

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const CALL = JSON.stringify([2, 'first-1', 'DataTransfer', { vendorId: 'early', data: 'with-the-101' }]);

/** An unmasked text frame (server to client), short payload. */
function textFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  return Buffer.concat([Buffer.from([0x81, payload.length]), payload]);
}

/** The first masked text frame a client sent, decoded (short payload); null until complete. */
function firstClientText(bytes: Buffer): string | null {
  if (bytes.length < 6) return null;
  const length = bytes[1] & 0x7f;
  if (bytes.length < 6 + length) return null;
  const mask = bytes.subarray(2, 6);
  return Buffer.from(bytes.subarray(6, 6 + length).map((byte, i) => byte ^ mask[i % 4])).toString();
}

/** Answers every upgrade with the 101 and `CALL` in one write, and records what the client sends after. */
class UpgradeWithFrameServer {
  readonly fromClient: Buffer[] = [];
  private readonly sockets = new Set<Socket>();
  private server: Server | null = null;

  async start(): Promise<number> {
    this.server = createServer((socket) => {
      this.sockets.add(socket);
      let request = Buffer.alloc(0);
      let upgraded = false;
      socket.on('data', (chunk) => {
        if (upgraded) {
          this.fromClient.push(chunk);
          return;
        }
        request = Buffer.concat([request, chunk]);
        const text = request.toString();
        if (!text.includes('\r\n\r\n')) return;
        upgraded = true;
        const key = /sec-websocket-key: *(\S+)/i.exec(text)![1];
        const accept = createHash('sha1').update(key + WS_GUID).digest('base64');
        const head = `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n`;
        socket.write(Buffer.concat([Buffer.from(head), textFrame(CALL)]));
      });
      socket.on('error', () => undefined);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as AddressInfo).port;
  }

  clientText(): string | null {
    return firstClientText(Buffer.concat(this.fromClient));
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }
}

describe('test chargers and a frame that arrives with the upgrade response', () => {
  let server: UpgradeWithFrameServer;
  const cleanups: Array<() => void> = [];

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0)) cleanup();
    await server.stop();
  });

  it('RecordingCharger records it and answers it', async () => {
    server = new UpgradeWithFrameServer();
    const port = await server.start();
    const charger = await RecordingCharger.connect(`ws://127.0.0.1:${port}/ocpp`, 'EARLY1', 0);
    cleanups.push(() => charger.close());

    await waitFor('the charger to answer the CALL', () => server.clientText());
    expect(charger.tags()).toEqual(['with-the-101']);
    expect(JSON.parse(server.clientText()!)).toEqual([3, 'first-1', { status: 'Accepted', data: 'with-the-101' }]);
  });

  it('RawChargePoint records it', async () => {
    server = new UpgradeWithFrameServer();
    const port = await server.start();
    const raw = await RawChargePoint.connect(`ws://127.0.0.1:${port}/ocpp/EARLY2`, 'ocpp1.6');
    cleanups.push(() => raw.socket.terminate());

    await waitFor('the raw charge point to record the CALL', () => raw.rawFrames.length > 0);
    expect(raw.rawFrames).toEqual([CALL]);
  });

  it('openAnsweringCharger records it and answers it', async () => {
    server = new UpgradeWithFrameServer();
    const port = await server.start();
    const charger = await openAnsweringCharger(`ws://127.0.0.1:${port}/ocpp/EARLY3`);
    cleanups.push(() => charger.socket.terminate());

    await waitFor('the charger to answer the CALL', () => server.clientText());
    expect(charger.received).toEqual(['DataTransfer:{"vendorId":"early","data":"with-the-101"}']);
    expect(JSON.parse(server.clientText()!)).toEqual([3, 'first-1', { status: 'Accepted' }]);
  });
});
