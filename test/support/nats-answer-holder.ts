import type { Socket } from 'node:net';
import { TcpProxy } from './tcp-proxy.js';

/**
 * A TCP proxy in front of a real nats-server that, once the server sends a chunk containing
 * `marker` (e.g. `stream_create_response`: JetStream's answer to a stream create), holds that
 * chunk and everything after it from the client until {@link release}. The server has done the
 * request; its answer reaches the client after the client's timeout, as a replicated stream's
 * creation answered late by the meta leader does. Only the first match is held.
 */
export class NatsAnswerHolder extends TcpProxy {
  private readonly held: Array<() => void> = [];
  private holding = false;
  private released = false;

  constructor(
    targetPort: number,
    private readonly marker: string,
  ) {
    super(targetPort, 'nats');
  }

  protected relay(client: Socket, upstream: Socket): void {
    client.on('data', (chunk) => upstream.write(chunk));
    client.on('close', () => upstream.destroy());
    // The marker may straddle two chunks: look at the end of the previous one too.
    let tail = '';
    upstream.on('data', (chunk: Buffer) => {
      const text = tail + chunk.toString('latin1');
      tail = text.slice(-this.marker.length);
      if (!this.holding && !this.released && text.includes(this.marker)) this.holding = true;
      if (this.holding) this.held.push(() => client.destroyed || client.write(chunk));
      else client.write(chunk);
    });
    upstream.on('close', () => client.destroy());
  }

  /** Sends what was held, in order, and passes everything through from now on. */
  release(): void {
    this.released = true;
    this.holding = false;
    for (const send of this.held.splice(0)) send();
  }
}
