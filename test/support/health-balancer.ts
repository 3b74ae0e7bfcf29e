import { createServer, connect } from 'node:net';
import type { Server, Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A small TCP load balancer for tests, as operators run one in front of the nodes: it polls each
 * backend's `/health` and sends new connections round-robin to the ones answering 200.
 */
export class HealthCheckingBalancer {
  private readonly healthy = new Set<number>();
  private readonly sockets = new Set<Socket>();
  private server: Server | null = null;
  private timer: NodeJS.Timeout | null = null;
  private next = 0;
  port = 0;

  constructor(private readonly backends: number[], private readonly intervalMs = 100) {}

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}/ocpp`;
  }

  addBackend(port: number): void {
    this.backends.push(port);
  }

  async start(): Promise<void> {
    await this.poll();
    this.timer = setInterval(() => void this.poll(), this.intervalMs);
    this.server = createServer((client) => this.route(client));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private route(client: Socket): void {
    const candidates = this.backends.filter((port) => this.healthy.has(port));
    if (candidates.length === 0) {
      client.destroy();
      return;
    }
    const port = candidates[this.next++ % candidates.length];
    const upstream = connect(port, '127.0.0.1');
    this.sockets.add(client).add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream).pipe(client);
  }

  private async poll(): Promise<void> {
    await Promise.all(
      this.backends.map(async (port) => {
        const ok = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(1_000) })
          .then((response) => response.status === 200)
          .catch(() => false);
        if (ok) this.healthy.add(port);
        else this.healthy.delete(port);
      }),
    );
  }
}
