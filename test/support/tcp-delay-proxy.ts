import type { Socket } from 'node:net';
import { TcpProxy } from './tcp-proxy.js';

/**
 * A TCP proxy that delays every chunk by `delayMs` in each direction, keeping the order: a
 * node behind it talks to a real Redis over a slower network path than its peers.
 */
export class TcpDelayProxy extends TcpProxy {
  constructor(
    targetPort: number,
    private readonly delayMs: number,
  ) {
    super(targetPort, 'redis');
  }

  protected relay(client: Socket, upstream: Socket): void {
    this.pipeDelayed(client, upstream);
    this.pipeDelayed(upstream, client);
  }

  private pipeDelayed(from: Socket, to: Socket): void {
    // Timers of equal delay fire in the order they were set, so chunks keep their order.
    from.on('data', (chunk) => setTimeout(() => to.destroyed || to.write(chunk), this.delayMs));
    from.on('close', () => setTimeout(() => to.destroy(), this.delayMs));
  }
}
