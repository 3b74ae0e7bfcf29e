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
    if (left > 0) this.handshakes.set(identity, left);
    else this.handshakes.delete(identity);
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
