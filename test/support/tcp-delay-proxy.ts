import { createConnection, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A TCP proxy that delays every chunk by `delayMs` in each direction, keeping the order: a
 * node behind it talks to a real Redis over a slower network path than its peers.
 */
export class TcpDelayProxy {
  private readonly sockets = new Set<Socket>();
  private server: Server | null = null;
  port = 0;

  constructor(
    private readonly targetPort: number,
    private readonly delayMs: number,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const server = createServer((client) => {
      const upstream = createConnection({ host: '127.0.0.1', port: this.targetPort });
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.on('close', () => this.sockets.delete(socket));
        socket.on('error', () => undefined);
      }
      this.pipeDelayed(client, upstream);
      this.pipeDelayed(upstream, client);
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server?.close(resolve) ?? resolve(undefined));
  }

  private pipeDelayed(from: Socket, to: Socket): void {
    // Timers of equal delay fire in the order they were set, so chunks keep their order.
    from.on('data', (chunk) => setTimeout(() => to.destroyed || to.write(chunk), this.delayMs));
    from.on('close', () => setTimeout(() => to.destroy(), this.delayMs));
  }
}
