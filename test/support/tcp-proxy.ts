import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy on a free local port in front of a real server on `targetPort`: each client gets its
 * own connection upstream, and the subclass decides how bytes go between the two ({@link relay}).
 */
export abstract class TcpProxy {
  private readonly sockets = new Set<Socket>();
  private server: Server | null = null;
  port = 0;

  constructor(
    private readonly targetPort: number,
    /** The URL scheme clients use (`redis`, `nats`). */
    private readonly scheme: string,
  ) {}

  get url(): string {
    return `${this.scheme}://127.0.0.1:${this.port}`;
  }

  /** Wires one client to its upstream connection (both directions, and closing). */
  protected abstract relay(client: Socket, upstream: Socket): void;

  async start(): Promise<void> {
    const server = createServer((client) => {
      const upstream = createConnection({ host: '127.0.0.1', port: this.targetPort });
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.on('close', () => this.sockets.delete(socket));
        socket.on('error', () => undefined);
      }
      this.relay(client, upstream);
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server?.close(resolve) ?? resolve(undefined));
  }
}
