import type { ServerOptions as HttpsServerOptions } from 'node:https';
import type { Registry } from 'prom-client';
import type { EventAdapterInterface } from './cluster/event-adapter.interface.js';
import type { TransportAdapter } from './cluster/transport-adapter.js';
import type { ConnectionRateLimitOptions } from './gateway/connection-rate-limiter.js';
import type { AuthenticationRequest, AuthenticationResult } from './gateway/ocpp-websocket-gateway.js';
import type { AnsweredCallsOptions } from './protocol/answered-calls.js';
import type { FrameLogOptions } from './protocol/frame-log.js';
import type { OcppProtocol } from './protocol/protocol.js';
import type { PayloadValidatorFn } from './protocol/validator.js';
import type { RedisAdapterOptions } from './redis/redis-adapter.js';

/** Per-action validators added to (or replacing) the OCA schemas, by protocol. */
export type CustomValidators = Partial<
  Record<OcppProtocol, Record<string, { request?: PayloadValidatorFn; response?: PayloadValidatorFn }>>
>;

export interface RateLimitOptions {
  /** Burst size: calls accepted back to back. */
  capacity: number;
  /** Sustained calls per second. */
  refillPerSecond: number;
}

export interface OcppClusterOptions {
  /** Subprotocols accepted, newest first by default. */
  protocols?: OcppProtocol[];
  /** Endpoint path; the charge point's identity is the last segment (`/ocpp/<identity>`). */
  path?: string;
  /** Serve WebSockets on their own port instead of the Nest HTTP server. */
  port?: number;
  host?: string;
  /** TLS for the own port (security profiles 2 and 3). */
  tls?: HttpsServerOptions;
  /** Unique per process. Default: OCPP_NODE_ID, else host name and a random suffix. */
  nodeId?: string;
  maxIdentityLength?: number;
  identityPattern?: RegExp;
  /** Runs before the upgrade; accept (optionally with a session object) or reject with a status. */
  authenticate?: (request: AuthenticationRequest) => AuthenticationResult | Promise<AuthenticationResult>;
  /** Largest accepted frame in bytes (default 64 KiB; `ws` itself would allow 100 MiB). */
  maxPayload?: number;
  /** Offer permessage-deflate to 2.x connections (required by 2.0.1/2.1). Default true. */
  perMessageDeflate?: boolean;
  maxConnections?: number;
  /**
   * Bound on a handshake (default 10000 ms). Own `port`: from the TCP accept to the completed
   * upgrade; every server: on `authenticate`.
   */
  handshakeTimeoutMs?: number;
  /** Handshakes in progress at once (default 5000); beyond it: HTTP 503. */
  maxPendingHandshakes?: number;
  /** Per remote address limit on upgrade attempts (HTTP 429). Default: off. */
  connectionRateLimit?: ConnectionRateLimitOptions;
  /** Default timeout of calls to charge points. */
  callTimeoutMs?: number;
  /** Outbound calls queued per charge point (queued + in flight). */
  maxQueueSize?: number;
  /** Server ping interval; a socket that did not answer the previous ping is terminated. 0 = off. */
  pingIntervalMs?: number;
  /** Validate every payload, both directions, against the OCA schemas. Default true. */
  strictMode?: boolean;
  validators?: CustomValidators;
  /** Inbound calls per connection (token bucket); false = unlimited. */
  rateLimit?: RateLimitOptions | false;
  /** Concurrent deliveries per node during a broadcast. */
  broadcastConcurrency?: number;
  /**
   * How long a caller remembers which node holds a charge point (default 1000 ms; 0 = ask
   * presence for every call). A stale entry costs one forwarding hop, never a lost call.
   */
  ownerCacheMs?: number;
  /**
   * OCPP 2.1 retries: how long, and how many bytes of answers (per charge point, per node), a
   * node keeps to replay to a retried CALL.
   */
  retryCache?: AnsweredCallsOptions;
  /**
   * A ready-made transport: RedisAdapter, InMemoryAdapter, any EventAdapterInterface, or a
   * minimal seed-shaped transport (publish, subscribe, unsubscribe, disconnect...) that the core
   * completes (README, "Writing a transport").
   */
  adapter?: EventAdapterInterface | TransportAdapter;
  /** Build a RedisAdapter from these options (ignored when `adapter` is given). */
  redis?: RedisAdapterOptions;
  /** Answer new upgrades with 503 while the cluster transport (Redis) is unreachable. Default true. */
  refuseUpgradesWhileTransportDown?: boolean;
  /**
   * New upgrades get 503 (Retry-After: 1) while this node's event loop runs later than this, so a
   * reconnect storm cannot starve its lease refresh and every socket it already serves; open
   * sockets and readiness are not affected. Default 1000 ms; `false`: never refuse for this.
   */
  maxEventLoopDelayMs?: number | false;
  drain?: DrainOptions;
  health?: HealthOptions;
  /** Register the module's Prometheus metrics here (e.g. prom-client's global `register`); default: a registry of its own. */
  metricsRegistry?: Registry;
  /** Log through Nest's Logger (default) or stay silent. */
  logging?: boolean;
  /**
   * The frame hook (audit log): `onFrame` sees every frame in and out of every charge point of
   * this node, after `redact` (e.g. `redactSecrets`). Off by default, and free when off.
   */
  frameLog?: FrameLogOptions;
  /**
   * The cluster envelope version this node writes and the newest it reads (default: the
   * library's, WIRE_VERSION). For tests that run two versions side by side (README, "Wire version").
   */
  wireVersion?: number;
}

export interface DrainOptions {
  /** Sockets close (1012) spread over this window, with jitter. Default 10000. */
  windowMs?: number;
  /** After the last close, how long to wait for charge points to reconnect elsewhere. Default 10000. */
  settleMs?: number;
}

export interface HealthOptions {
  /** Each Redis connection must answer PING within this. Default 1000. */
  pingTimeoutMs?: number;
  /** Consumer lag (entries) over which readiness is degraded. Default 1000. */
  lagDegraded?: number;
  /** Consumer lag over which readiness is down. Default 10000. */
  lagDown?: number;
}

/** Options after defaults; what the parts receive. */
export interface ResolvedOcppClusterOptions
  extends Required<
    Omit<
      OcppClusterOptions,
      | 'port'
      | 'host'
      | 'tls'
      | 'identityPattern'
      | 'authenticate'
      | 'maxConnections'
      | 'connectionRateLimit'
      | 'adapter'
      | 'redis'
      | 'validators'
      | 'drain'
      | 'health'
      | 'metricsRegistry'
      | 'retryCache'
      | 'frameLog'
    >
  > {
  drain: Required<DrainOptions>;
  metricsRegistry?: Registry;
  health: Required<HealthOptions>;
  retryCache: Required<AnsweredCallsOptions>;
  port?: number;
  host?: string;
  tls?: HttpsServerOptions;
  identityPattern?: RegExp;
  authenticate?: OcppClusterOptions['authenticate'];
  maxConnections?: number;
  connectionRateLimit?: ConnectionRateLimitOptions;
  adapter?: EventAdapterInterface;
  redis?: RedisAdapterOptions;
  validators: CustomValidators;
  frameLog?: FrameLogOptions;
}
