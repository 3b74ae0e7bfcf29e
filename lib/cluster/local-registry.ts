import type { RpcSession } from '../protocol/rpc-session.js';
import type { OcppProtocol } from '../protocol/protocol.js';

/** One live charge point socket on this node. */
export interface LocalConnection {
  identity: string;
  protocol: OcppProtocol;
  rpc: RpcSession;
  /** Presence epoch claimed before the handshake completed (0: accepted while the claim failed). */
  epoch: number;
  connectedAt: number;
  /** Whatever the authenticate hook attached. */
  session: unknown;
  remoteAddress?: string;
}

/** identity → the connection this node holds for it (and the handshakes it is completing). */
export class LocalRegistry {
  private readonly connections = new Map<string, LocalConnection>();
  /** identity → handshakes that claimed presence here and are not open (nor given up) yet. */
  private readonly handshakes = new Map<string, number>();
  /** identity → who waits for its handshakes to end (see handshakesSettled). */
  private readonly handshakeWaiters = new Map<string, Array<() => void>>();

  get size(): number {
    return this.connections.size;
  }

  has(identity: string): boolean {
    return this.connections.has(identity);
  }

  get(identity: string): LocalConnection | undefined {
    return this.connections.get(identity);
  }

  /** Stores the connection and returns the one it replaces, if any. */
  set(connection: LocalConnection): LocalConnection | undefined {
    const previous = this.connections.get(connection.identity);
    this.connections.set(connection.identity, connection);
    return previous;
  }

  /** Removes the entry only if it is still this very connection (a replacement stays). */
  deleteIf(connection: LocalConnection): boolean {
    if (this.connections.get(connection.identity) !== connection) return false;
    this.connections.delete(connection.identity);
    return true;
  }

  values(): IterableIterator<LocalConnection> {
    return this.connections.values();
  }

  /**
   * A handshake of `identity` claims presence here before its socket opens: until then presence
   * names this node without a connection in the registry, and the charge point is connecting,
   * not gone.
   */
  beginHandshake(identity: string): void {
    this.handshakes.set(identity, (this.handshakes.get(identity) ?? 0) + 1);
  }

  /** The handshake opened its socket (now in the registry) or was given up. */
  endHandshake(identity: string): void {
    const left = (this.handshakes.get(identity) ?? 0) - 1;
    if (left > 0) {
      this.handshakes.set(identity, left);
      return;
    }
    this.handshakes.delete(identity);
    const waiters = this.handshakeWaiters.get(identity);
    this.handshakeWaiters.delete(identity);
    // Resolved promises run their callbacks after this turn: the opened socket is in the registry by then.
    for (const wake of waiters ?? []) wake();
  }

  /**
   * Resolves once no handshake of `identity` is in progress here, or at `deadline` (epoch ms),
   * whichever comes first: a command for a charge point that is connecting here waits for its
   * socket instead of being answered "not connected".
   */
  handshakesSettled(identity: string, deadline: number): Promise<void> {
    if (!this.handshakes.has(identity)) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
      timer.unref();
      const waiters = this.handshakeWaiters.get(identity) ?? [];
      waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
      this.handshakeWaiters.set(identity, waiters);
    });
  }

  isHandshaking(identity: string): boolean {
    return this.handshakes.has(identity);
  }

  countByProtocol(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const connection of this.connections.values()) {
      counts[connection.protocol] = (counts[connection.protocol] ?? 0) + 1;
    }
    return counts;
  }
}
