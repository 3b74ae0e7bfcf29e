/**
 * The seed's adapter shape (ocpp-ws-io "Custom Adapters"): what a user writes over their own
 * broker. `defineAdapter` turns it into a full `EventAdapterInterface`; the core fills the rest
 * (epochs, presence records, liveness), see `completeTransport`.
 */

/** Called once per message the broker delivers on a subscribed channel. */
export type TransportHandler = (data: unknown) => void | Promise<void>;

export interface TransportMessage {
  channel: string;
  data: unknown;
}

export interface TransportAdapter {
  /** Shown in health output and metrics (default `custom`). */
  name?: string;
  /** Delivers `data` to every subscriber of `channel` (JSON-serialisable objects only). */
  publish(channel: string, data: unknown): Promise<void>;
  /** Many messages at once, e.g. one pipeline per broker round trip (optional). */
  publishBatch?(messages: TransportMessage[]): Promise<void>;
  subscribe(channel: string, handler: TransportHandler): Promise<void>;
  unsubscribe(channel: string): Promise<void>;
  disconnect(): Promise<void>;
  /** Optional presence store: identity → node id, expiring after `ttl` seconds unless set again. */
  setPresence?(identity: string, nodeId: string, ttl: number): Promise<void>;
  getPresence?(identity: string): Promise<string | null>;
  removePresence?(identity: string): Promise<void>;
}

export interface TransportCoreOptions {
  /** How often this node announces it is alive over the transport (default 1000 ms). */
  heartbeatMs?: number;
  /** A node not heard from for this long counts as dead (default 3 × heartbeatMs). */
  livenessTtlMs?: number;
  /** TTL given to `setPresence` (seconds, default 300); entries are set again at half of it. */
  presenceTtlSeconds?: number;
}
