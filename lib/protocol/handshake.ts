import type { IncomingMessage } from 'node:http';
import type { OcppProtocol } from './protocol.js';

/**
 * An OCPP-J handshake as it passes between the front door that accepts charge point sockets
 * (the WebSocket gateway) and the node that serves them; both import it from here, so neither
 * imports the other (the composition root, lib/create-node.ts or the Nest module, wires them).
 */

/** An authenticated handshake about to be completed (the node claims the identity now). */
export interface UpgradeRequest {
  identity: string;
  protocol: OcppProtocol;
  session: unknown;
  remoteAddress?: string;
}

/**
 * `accept: true` completes the handshake and hands `ticket` to `accept()`; `release` runs
 * instead when the handshake ends without a connection. `accept: false` answers `status`.
 */
export type UpgradeVerdict =
  | { accept: true; ticket?: unknown; release?: () => void }
  | { accept: false; status: number; reason: string };

/** A socket the front door accepted, and what it learned during the handshake. */
export interface ConnectionInfo {
  identity: string;
  protocol: OcppProtocol;
  session: unknown;
  remoteAddress?: string;
  request: IncomingMessage;
  /** What `beforeUpgrade` accepted the handshake with. */
  ticket?: unknown;
}
