import ocppRpc from 'ocpp-rpc';
import { WebSocket } from 'ws';
import { withTimeout } from './wait.js';

const { RPCClient, createRPCError } = ocppRpc as unknown as {
  RPCClient: new (options: Record<string, unknown>) => RpcClient;
  createRPCError(code: string, message?: string, details?: Record<string, unknown>): Error;
};
export { createRPCError };

/** The slice of ocpp-rpc's RPCClient the tests use (a real third-party charge point). */
export interface RpcClient {
  identity: string;
  protocol: string | undefined;
  connect(): Promise<unknown>;
  close(options?: { code?: number; reason?: string; awaitPending?: boolean; force?: boolean }): Promise<{ code: number; reason: string }>;
  call(method: string, params?: unknown, options?: Record<string, unknown>): Promise<any>;
  handle(method: string, handler: (call: { params: any; method: string; messageId: string }) => unknown): void;
  on(event: string, listener: (...args: any[]) => void): void;
  once(event: string, listener: (...args: any[]) => void): void;
}

export interface ChargePointOptions {
  protocols?: string[];
  password?: Buffer | string;
  strictMode?: boolean;
  reconnect?: boolean;
  callTimeoutMs?: number;
  /** Reconnect backoff (ocpp-rpc's `backoff` option), for reconnect tests. */
  backoff?: { initialDelay: number; maxDelay: number; factor?: number; randomisationFactor?: number };
}

/** An ocpp-rpc charge point, not yet connected. */
export function chargePoint(endpoint: string, identity: string, options: ChargePointOptions = {}): RpcClient {
  return new RPCClient({
    endpoint,
    identity,
    protocols: options.protocols ?? ['ocpp1.6'],
    password: options.password ?? null,
    strictMode: options.strictMode ?? false,
    reconnect: options.reconnect ?? false,
    callTimeoutMs: options.callTimeoutMs ?? 10_000,
    pingIntervalMs: 0,
    ...(options.backoff ? { backoff: { factor: 2, randomisationFactor: 0.25, ...options.backoff } } : {}),
  });
}

export async function connectedChargePoint(endpoint: string, identity: string, options: ChargePointOptions = {}): Promise<RpcClient> {
  const client = chargePoint(endpoint, identity, options);
  await withTimeout(client.connect(), 10_000, `${identity} to connect`);
  return client;
}

/** A raw WebSocket charge point that records every frame it receives. */
export class RawChargePoint {
  readonly frames: unknown[] = [];
  readonly rawFrames: string[] = [];
  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const text = data.toString();
      this.rawFrames.push(text);
      try {
        this.frames.push(JSON.parse(text));
      } catch {
        this.frames.push(text);
      }
    });
  }

  static async connect(url: string, protocol: string | string[], options: Record<string, unknown> = {}): Promise<RawChargePoint> {
    const socket = new WebSocket(url, protocol, options);
    // Records from before the socket opens: a frame that arrives with the 101 is emitted before the await resumes.
    const client = new RawChargePoint(socket);
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        socket.once('open', () => resolve());
        socket.once('error', reject);
        socket.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      }),
      10_000,
      `raw socket to ${url}`,
    );
    return client;
  }

  send(frame: unknown): void {
    this.socket.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  async nextFrame(predicate: (frame: any) => boolean = () => true, timeoutMs = 5_000): Promise<any> {
    const giveUpAt = Date.now() + timeoutMs;
    let seen = 0;
    for (;;) {
      for (; seen < this.frames.length; seen++) if (predicate(this.frames[seen])) return this.frames[seen];
      if (Date.now() > giveUpAt) throw new Error(`no matching frame within ${timeoutMs} ms; got ${JSON.stringify(this.frames)}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  closed(): Promise<{ code: number; reason: string }> {
    if (this.socket.readyState === WebSocket.CLOSED) return Promise.resolve({ code: 1006, reason: '' });
    return withTimeout(
      new Promise((resolve) => this.socket.once('close', (code, reason) => resolve({ code, reason: reason.toString() }))),
      10_000,
      'socket close',
    );
  }

  close(): void {
    this.socket.terminate();
  }
}

/** How a node refused upgrades after a fault, in ms after the fault ended (undefined: never refused). */
export interface RefusalWindow {
  refusals: number;
  firstRefusalMs?: number;
  lastRefusalMs?: number;
}

const REFUSED = /Service Unavailable|503/;

/**
 * For tests about outages only: connects `identity` after a fault that ended at `faultEndedAt`
 * (Date.now() then), recording each HTTP 503 the node answers meanwhile, and returns the client
 * with that refusal window for the test to assert on. Any other error fails at once; still
 * refusing `giveUpAfterMs` after the fault ended fails with the window seen so far. Everywhere
 * else a refused upgrade fails the test: use {@link connectedChargePoint}.
 */
export async function connectExpectingRefusalWindow(
  endpoint: string,
  identity: string,
  { faultEndedAt, giveUpAfterMs = 20_000, ...options }: ChargePointOptions & { faultEndedAt: number; giveUpAfterMs?: number },
): Promise<{ client: RpcClient; window: RefusalWindow }> {
  const window: RefusalWindow = { refusals: 0 };
  for (;;) {
    try {
      return { client: await connectedChargePoint(endpoint, identity, options), window };
    } catch (error) {
      if (!REFUSED.test((error as Error).message)) throw error;
      const sinceFault = Date.now() - faultEndedAt;
      window.refusals++;
      window.firstRefusalMs ??= sinceFault;
      window.lastRefusalMs = sinceFault;
      if (sinceFault > giveUpAfterMs) {
        throw new Error(`${endpoint}/${identity}: still refused ${sinceFault} ms after the fault ended (${JSON.stringify(window)})`, { cause: error });
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
