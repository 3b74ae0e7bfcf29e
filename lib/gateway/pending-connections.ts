import type { Duplex } from 'node:stream';

/**
 * Sockets of the gateway's own server that have not upgraded yet. Each gets `timeoutMs` from the
 * TCP accept to finish its upgrade (Node's own headersTimeout is only checked every 30 s, so 5,000
 * idle sockets were held ~72 s each), and at most `max` wait at once.
 */
export class PendingConnections {
  private readonly timers = new Map<Duplex, NodeJS.Timeout>();

  constructor(
    private readonly timeoutMs: number,
    private readonly max: number,
    private readonly onTimeout: (socket: Duplex) => void,
  ) {}

  get size(): number {
    return this.timers.size;
  }

  /** Starts watching `socket`; false when `max` sockets already wait (the caller refuses it). */
  admit(socket: Duplex): boolean {
    if (this.timers.size >= this.max) return false;
    const timer = setTimeout(() => {
      this.timers.delete(socket);
      this.onTimeout(socket);
    }, this.timeoutMs);
    timer.unref();
    this.timers.set(socket, timer);
    socket.once('close', () => this.release(socket));
    return true;
  }

  has(socket: Duplex): boolean {
    return this.timers.has(socket);
  }

  /** The socket upgraded (or closed): it no longer counts and its timer stops. */
  release(socket: Duplex): void {
    const timer = this.timers.get(socket);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.timers.delete(socket);
  }
}
