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

/** identity → the connection this node holds for it. */
export class LocalRegistry {
  private readonly connections = new Map<string, LocalConnection>();

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

  countByProtocol(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const connection of this.connections.values()) {
      counts[connection.protocol] = (counts[connection.protocol] ?? 0) + 1;
    }
    return counts;
  }
}
