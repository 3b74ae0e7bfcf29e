import http, { STATUS_CODES, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { TLSSocket, type PeerCertificate } from 'node:tls';
import { WebSocket, WebSocketServer } from 'ws';

import { InvalidOptionsError } from '../protocol/errors.js';
import { SUPPORTED_PROTOCOLS, isOcpp2, isOcppProtocol, type OcppProtocol } from '../protocol/protocol.js';
import { basicAuthPasswordFor } from './basic-auth.js';
import { ConnectionRateLimiter, type ConnectionRateLimitOptions } from './connection-rate-limiter.js';
import { DEFAULT_MAX_IDENTITY_LENGTH, identityFromPath, normalizeBasePath, rawPathname, validateIdentity } from './identity.js';
import { PendingConnections } from './pending-connections.js';
import { negotiateSubprotocol, parseSubprotocols } from './subprotocol.js';
import type { ConnectionInfo, UpgradeRequest, UpgradeVerdict } from '../protocol/handshake.js';

/** What the `authenticate` hook sees before the upgrade is accepted. */
export interface AuthenticationRequest {
  identity: string;
  /** Subprotocols the client offered, in its order of preference. */
  protocols: string[];
  /** The protocol the gateway would choose (client's first supported one). */
  protocol: OcppProtocol;
  headers: IncomingHttpHeaders;
  remoteAddress: string | undefined;
  /** Basic auth password as raw bytes, present only when the username equals `identity`. */
  password?: Buffer;
  /** The client certificate, when the connection is TLS and the client sent one (profile 3). */
  clientCertificate?: PeerCertificate;
  /** Whether the client certificate verified against the server's CAs. */
  clientCertificateAuthorized?: boolean;
  request: IncomingMessage;
}

/**
 * `true`/`{ accept: true }` upgrades; `session` travels to `onConnection`; `protocol` overrides the
 * negotiated one (it must be one the client offered and we support). `false`/`{ accept: false }`
 * answers `status` (default 401) with `message` as the body.
 */
export type AuthenticationResult =
  | boolean
  | { accept: true; session?: unknown; protocol?: OcppProtocol }
  | { accept: false; status?: number; message?: string };

export type { ConnectionInfo, UpgradeRequest, UpgradeVerdict };

/** Why an upgrade was refused; stable labels for metrics. */
export type RejectionReason =
  | 'closed' // the gateway was closed
  | 'not-found' // path outside the endpoint
  | 'bad-identity' // identity refused by the rules
  | 'bad-request' // not a valid WebSocket handshake
  | 'not-accepting' // isAcceptingConnections() said no
  | 'overloaded' // isAcceptingConnections() said no because the node is overloaded (503 with Retry-After)
  | 'too-many-connections' // maxConnections reached
  | 'unauthorized' // authenticate() refused
  | 'authentication-error' // authenticate() threw or returned nonsense
  | 'handshake-timeout' // the upgrade (own port: from the TCP accept), authenticate() or beforeUpgrade() did not finish in time
  | 'before-upgrade' // beforeUpgrade() refused (e.g. the presence claim failed)
  | 'too-many-handshakes' // maxPendingHandshakes reached
  | 'rate-limited' // connectionRateLimit: too many upgrades from this address
  | 'no-subprotocol'; // handshake completed without a subprotocol, then closed with 1002

/** The little the gateway needs from a logger (Nest's Logger and the cluster logger fit). */
export interface GatewayLogger {
  warn(message: string): void;
  error(message: string): void;
}

export interface GatewayOptions {
  /** Endpoint path; charge points connect to `path + "/" + identity`. Default "/ocpp". */
  path?: string;
  /** Protocols we speak. Default SUPPORTED_PROTOCOLS. The client's order of preference decides. */
  protocols?: readonly OcppProtocol[];
  /** Default 48 (OCPP 2.x). */
  maxIdentityLength?: number;
  identityPattern?: RegExp;
  authenticate?: (req: AuthenticationRequest) => AuthenticationResult | Promise<AuthenticationResult>;
  /** Largest accepted message in bytes (after decompression); larger closes with 1009. Default 65536. */
  maxPayload?: number;
  /** Offer permessage-deflate to OCPP 2.x connections (never to 1.6). Default true. */
  perMessageDeflate?: boolean;
  /** Open connections plus handshakes in progress; beyond it: HTTP 503. */
  maxConnections?: number;
  /**
   * Bound on a handshake. Own port (listen()): from the TCP accept to the completed upgrade (a
   * socket that sends nothing is destroyed); the server's headersTimeout and requestTimeout are set
   * to it too. Every server: on the `authenticate` and `beforeUpgrade` hooks together, past it HTTP 503. Default 10 000 ms.
   */
  handshakeTimeoutMs?: number;
  /**
   * Handshakes in progress at once; beyond it: HTTP 503. Own port: TCP connections not yet
   * upgraded. A shared server (attach()): upgrade requests in the `authenticate` hook (the server
   * owner bounds the rest with its headersTimeout/requestTimeout). Default 5 000.
   */
  maxPendingHandshakes?: number;
  /** Per remote address limit on upgrade attempts, answered with HTTP 429 and Retry-After. Default: off. */
  connectionRateLimit?: ConnectionRateLimitOptions;
  /**
   * Runs after authentication, before the 101 answer: whatever it does (the cluster node claims
   * the identity's presence) is done, in handshake order, before the charge point sees its socket open.
   */
  beforeUpgrade?: (request: UpgradeRequest) => Promise<UpgradeVerdict>;
  /** Checked on every upgrade (draining, Redis down, ...). */
  isAcceptingConnections?: () => { ok: true } | { ok: false; status: number; reason: string; overloaded?: boolean; retryAfterS?: number };
  onConnection(ws: WebSocket, info: ConnectionInfo): void;
  /** `status` is the HTTP status, or the close code (1002) for `no-subprotocol`. */
  onRejected?(reason: RejectionReason, status: number, detail?: string): void;
  /** Default: console. */
  logger?: GatewayLogger;
}

export const DEFAULT_GATEWAY_PATH = '/ocpp';
export const DEFAULT_MAX_PAYLOAD = 64 * 1024;
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
export const DEFAULT_MAX_PENDING_HANDSHAKES = 5_000;
const MAX_PAYLOAD_LIMIT = 16 * 1024 * 1024;
/** Longest delay a Node timer can wait. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** How long close() lets a charge point answer our close frame before cutting the socket. */
const CLOSE_GRACE_MS = 2_000;
/** How long an HTTP error answer may take to flush before the socket is cut anyway. */
const FLUSH_TIMEOUT_MS = 2_000;
const WS_KEY = /^[+/0-9A-Za-z]{22}==$/;

interface Attachment {
  server: http.Server | https.Server;
  listener: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  owned: boolean;
}

interface PendingHandshake {
  /** Ends the handshake once; false if it had already ended. */
  settle(): boolean;
  /** Not ended yet (no answer, no timeout, client still there). */
  isOpen(): boolean;
  socket: Duplex;
}

type Rejection = { status: number; reason: RejectionReason; detail?: string; headers?: Record<string, string> };

/**
 * The WebSocket front door: answers every HTTP upgrade on the servers it is attached to, checks
 * path, identity, capacity, subprotocol and credentials before the upgrade, and hands accepted
 * sockets to `onConnection`. Framework-free; the Nest layer wires it to the HTTP server.
 *
 * It answers every upgrade of a server, including paths outside its endpoint (404), because an
 * upgrade nobody answers hangs: do not put Nest's WsAdapter (or another upgrade handler) on the
 * same server, or serve the gateway on its own port with listen().
 *
 * It does not know about other connections of the same identity: replacing an older socket is
 * the registry's job.
 */
export class OcppWebSocketGateway {
  private readonly basePath: string;
  private readonly protocols: readonly OcppProtocol[];
  private readonly maxIdentityLength: number;
  private readonly handshakeTimeoutMs: number;
  private readonly logger: GatewayLogger;
  private readonly plain: WebSocketServer;
  private readonly deflate: WebSocketServer | undefined;
  private readonly chosen = new WeakMap<IncomingMessage, OcppProtocol>();
  private readonly attachments: Attachment[] = [];
  private readonly clients = new Set<WebSocket>();
  /** Sockets upgraded only to be closed with 1002 (no common subprotocol). */
  private readonly refused = new Set<WebSocket>();
  /** Upgrade requests in the authenticate hook, by socket. */
  private readonly pending = new Map<Duplex, PendingHandshake>();
  private readonly maxPendingHandshakes: number;
  /** Own-port sockets not yet upgraded. */
  private readonly unupgraded: PendingConnections;
  private readonly rateLimiter: ConnectionRateLimiter | null;
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(private readonly options: GatewayOptions) {
    const basePath = normalizeBasePath(options.path ?? DEFAULT_GATEWAY_PATH);
    if (basePath === null) throw new InvalidOptionsError('path', 'must be an absolute path without query, fragment or percent-encoding');
    this.basePath = basePath;

    const protocols = options.protocols ?? SUPPORTED_PROTOCOLS;
    if (protocols.length === 0) throw new InvalidOptionsError('protocols', 'must name at least one protocol');
    for (const protocol of protocols) {
      if (!isOcppProtocol(protocol)) throw new InvalidOptionsError('protocols', `unknown protocol ${JSON.stringify(protocol)}`);
    }
    if (new Set(protocols).size !== protocols.length) throw new InvalidOptionsError('protocols', 'contains duplicates');
    this.protocols = [...protocols];

    this.maxIdentityLength = options.maxIdentityLength ?? DEFAULT_MAX_IDENTITY_LENGTH;
    positiveInteger('maxIdentityLength', this.maxIdentityLength);
    const maxPayload = options.maxPayload ?? DEFAULT_MAX_PAYLOAD;
    positiveInteger('maxPayload', maxPayload, MAX_PAYLOAD_LIMIT);
    if (options.maxConnections !== undefined) positiveInteger('maxConnections', options.maxConnections);
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    positiveInteger('handshakeTimeoutMs', this.handshakeTimeoutMs, MAX_TIMER_MS);
    this.maxPendingHandshakes = options.maxPendingHandshakes ?? DEFAULT_MAX_PENDING_HANDSHAKES;
    positiveInteger('maxPendingHandshakes', this.maxPendingHandshakes);
    this.unupgraded = new PendingConnections(this.handshakeTimeoutMs, this.maxPendingHandshakes, (socket) => this.onHandshakeTimeout(socket));
    this.rateLimiter = options.connectionRateLimit === undefined ? null : new ConnectionRateLimiter(options.connectionRateLimit);
    if (typeof options.onConnection !== 'function') throw new InvalidOptionsError('onConnection', 'must be a function');
    if (options.authenticate !== undefined && typeof options.authenticate !== 'function') {
      throw new InvalidOptionsError('authenticate', 'must be a function');
    }
    if (options.beforeUpgrade !== undefined && typeof options.beforeUpgrade !== 'function') {
      throw new InvalidOptionsError('beforeUpgrade', 'must be a function');
    }
    this.logger = options.logger ?? console;

    // ws picks the subprotocol through handleProtocols; we decided it before the upgrade.
    const handleProtocols = (_offered: Set<string>, req: IncomingMessage): string | false => this.chosen.get(req) ?? false;
    const onClientError = (err: Error, socket: Duplex): void => this.reject(socket, { status: 400, reason: 'bad-request', detail: err.message });
    this.plain = new WebSocketServer({ noServer: true, clientTracking: false, maxPayload, perMessageDeflate: false, handleProtocols });
    this.plain.on('wsClientError', onClientError);
    // One server per compression setting, because ws negotiates permessage-deflate per server:
    // OCPP 2.x requires the CSMS to support it, OCPP 1.6 does not ask for it, so 1.6 stays plain.
    if (options.perMessageDeflate ?? true) {
      this.deflate = new WebSocketServer({
        noServer: true,
        clientTracking: false,
        maxPayload,
        // No context takeover either way: ws then frees each zlib stream after its message, so an
        // idle connection holds no compression memory (with takeover it held ~270 KB, measured).
        perMessageDeflate: {
          threshold: 1024,
          serverNoContextTakeover: true,
          clientNoContextTakeover: true,
        },
        handleProtocols,
      });
      this.deflate.on('wsClientError', onClientError);
    }
  }

  /** Open WebSocket connections handed to onConnection and not yet closed. */
  get connectionCount(): number {
    return this.clients.size;
  }

  /** Handshakes in progress: own-port sockets not yet upgraded, plus upgrades in authenticate on shared servers. */
  get pendingHandshakeCount(): number {
    let shared = 0;
    for (const socket of this.pending.keys()) if (!this.unupgraded.has(socket)) shared++;
    return this.unupgraded.size + shared;
  }

  /** Answers every upgrade request of `server` (see the class comment). */
  attach(server: http.Server | https.Server): void {
    this.addServer(server, false);
  }

  /** Serves the gateway on its own port (https when `tls` is given); resolves to the bound port. */
  async listen(port: number, host?: string, tls?: https.ServerOptions): Promise<number> {
    const answerPlainRequest = (_req: IncomingMessage, res: http.ServerResponse): void => {
      res.writeHead(426, { Connection: 'close', 'Content-Type': 'text/plain; charset=utf-8', Upgrade: 'websocket' });
      res.end('WebSocket upgrade required\n');
    };
    const bounds = { headersTimeout: this.handshakeTimeoutMs, requestTimeout: this.handshakeTimeoutMs };
    const server = tls
      ? https.createServer({ minVersion: 'TLSv1.2', handshakeTimeout: this.handshakeTimeoutMs, ...bounds, ...tls }, answerPlainRequest)
      : http.createServer(bounds, answerPlainRequest);
    // Every socket must upgrade within handshakeTimeoutMs; a TLS one counts once its TLS
    // handshake is done (bounded before that by the server's handshakeTimeout).
    server.on(tls ? 'secureConnection' : 'connection', (socket: Duplex) => this.onOwnConnection(socket));
    this.addServer(server, true);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.removeListener('error', reject);
        resolve();
      });
    }).catch((err: unknown) => {
      this.removeAttachment(server);
      throw err;
    });
    server.on('error', (err) => this.logger.error(`OCPP gateway server error: ${String(err)}`));
    return (server.address() as AddressInfo).port;
  }

  /**
   * Stops accepting: handshakes in progress and later upgrades get 503, open connections are
   * closed with 1001 (cut after a short grace), servers from listen() are closed. Servers from
   * attach() keep answering upgrades with 503 until they close. Close sessions first for a
   * graceful shutdown; this is the backstop.
   */
  close(): Promise<void> {
    if (!this.closing) {
      this.closed = true;
      this.closing = this.shutdown();
    }
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    for (const handshake of [...this.pending.values()]) {
      if (handshake.settle()) this.reject(handshake.socket, { status: 503, reason: 'closed' });
    }
    const sockets = [...this.clients, ...this.refused].map((ws) => closeWithin(ws, 1001, 'server shutting down', CLOSE_GRACE_MS));
    await Promise.all(sockets);
    const owned: Promise<void>[] = [];
    for (const { server, owned: isOwned } of [...this.attachments]) {
      if (isOwned) {
        owned.push(new Promise((resolve) => server.close(() => resolve())));
        server.closeAllConnections();
        this.removeAttachment(server);
      } else if (server.listening) {
        server.once('close', () => this.removeAttachment(server));
      } else {
        this.removeAttachment(server);
      }
    }
    await Promise.all(owned);
    this.plain.close();
    this.deflate?.close();
  }

  private addServer(server: http.Server | https.Server, owned: boolean): void {
    if (this.closed) throw new Error('OcppWebSocketGateway is closed');
    if (this.attachments.some((a) => a.server === server)) return;
    const listener = (req: IncomingMessage, socket: Duplex, head: Buffer): void => this.onUpgrade(req, socket, head);
    server.on('upgrade', listener);
    this.attachments.push({ server, listener, owned });
  }

  private removeAttachment(server: http.Server | https.Server): void {
    const index = this.attachments.findIndex((a) => a.server === server);
    if (index === -1) return;
    server.removeListener('upgrade', this.attachments[index].listener);
    this.attachments.splice(index, 1);
  }

  private onOwnConnection(socket: Duplex): void {
    if (this.unupgraded.admit(socket)) return;
    socket.on('error', destroyOnError);
    this.reject(socket, { status: 503, reason: 'too-many-handshakes' });
  }

  /** An own-port socket did not upgrade in time: 503 if its authenticate hook still runs, else 408. */
  private onHandshakeTimeout(socket: Duplex): void {
    const handshake = this.pending.get(socket);
    if (handshake) {
      if (handshake.settle()) this.reject(socket, { status: 503, reason: 'handshake-timeout' });
      return;
    }
    socket.on('error', destroyOnError);
    this.reject(socket, { status: 408, reason: 'handshake-timeout' });
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', destroyOnError);
    const check = this.precheck(req);
    if (!check.ok) return this.reject(socket, check.rejection);
    const { identity, offered, protocol } = check;
    if (protocol === null) return this.refuseSubprotocol(req, socket, head, offered);
    if (!this.options.authenticate && !this.options.beforeUpgrade) return void this.upgrade(req, socket, head, identity, protocol, undefined);
    this.admit(req, socket, head, identity, offered, protocol);
  }

  /** Everything decided synchronously, in this order: path, identity, handshake, capacity, subprotocol. */
  private precheck(
    req: IncomingMessage,
  ): { ok: false; rejection: Rejection } | { ok: true; identity: string; offered: string[]; protocol: OcppProtocol | null } {
    if (this.closed) return { ok: false, rejection: { status: 503, reason: 'closed' } };
    const limited = this.rateLimited(req);
    if (limited) return { ok: false, rejection: limited };
    const match = identityFromPath(rawPathname(req.url ?? '/'), this.basePath);
    if (match === null) return { ok: false, rejection: { status: 404, reason: 'not-found' } };
    if (!match.ok) return { ok: false, rejection: { status: 400, reason: 'bad-identity', detail: match.reason } };
    const invalid = validateIdentity(match.identity, { maxLength: this.maxIdentityLength, pattern: this.options.identityPattern });
    if (invalid !== null) return { ok: false, rejection: { status: 400, reason: 'bad-identity', detail: invalid } };

    const malformed = checkWebSocketRequest(req);
    if (malformed) return { ok: false, rejection: malformed };
    const offered = parseSubprotocols(headerValue(req.headers['sec-websocket-protocol']));
    if (offered === null) {
      return { ok: false, rejection: { status: 400, reason: 'bad-request', detail: 'invalid Sec-WebSocket-Protocol header' } };
    }

    const notAccepting = this.checkAccepting();
    if (notAccepting) return { ok: false, rejection: notAccepting };
    const max = this.options.maxConnections;
    if (max !== undefined && this.clients.size + this.pending.size >= max) {
      return { ok: false, rejection: { status: 503, reason: 'too-many-connections' } };
    }
    // Own-port sockets were counted at the TCP accept; this bounds upgrades on a shared server.
    if (this.pending.size >= this.maxPendingHandshakes) {
      return { ok: false, rejection: { status: 503, reason: 'too-many-handshakes' } };
    }
    return { ok: true, identity: match.identity, offered, protocol: negotiateSubprotocol(offered, this.protocols) };
  }

  private rateLimited(req: IncomingMessage): Rejection | null {
    if (this.rateLimiter === null) return null;
    const waitMs = this.rateLimiter.take(req.socket.remoteAddress ?? 'unknown');
    if (waitMs === 0) return null;
    return { status: 429, reason: 'rate-limited', headers: { 'Retry-After': String(Math.ceil(waitMs / 1000)) } };
  }

  private checkAccepting(): Rejection | null {
    const hook = this.options.isAcceptingConnections;
    if (!hook) return null;
    let verdict: ReturnType<typeof hook>;
    try {
      verdict = hook();
    } catch (err) {
      this.logger.error(`isAcceptingConnections() threw: ${errorText(err)}`);
      return { status: 503, reason: 'not-accepting' };
    }
    if (verdict.ok) return null;
    const status = isErrorStatus(verdict.status) ? verdict.status : 503;
    const headers = verdict.retryAfterS === undefined ? undefined : { 'Retry-After': String(verdict.retryAfterS) };
    return { status, reason: verdict.overloaded ? 'overloaded' : 'not-accepting', detail: verdict.reason, headers };
  }

  /** The asynchronous part of a handshake: authenticate, then beforeUpgrade, then upgrade; bounded, and given up when the client goes. */
  private admit(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    identity: string,
    offered: string[],
    protocol: OcppProtocol,
  ): void {
    let settled = false;
    const handshake: PendingHandshake = {
      socket,
      isOpen: () => !settled,
      settle: () => {
        if (settled) return false;
        settled = true;
        clearTimeout(timer);
        socket.removeListener('close', onClose);
        this.pending.delete(socket);
        return true;
      },
    };
    // The client went away while the hook ran: nothing left to answer.
    const onClose = (): void => void handshake.settle();
    const timer = setTimeout(() => {
      if (handshake.settle()) this.reject(socket, { status: 503, reason: 'handshake-timeout' });
    }, this.handshakeTimeoutMs);
    socket.once('close', onClose);
    this.pending.set(socket, handshake);

    void (async () => {
      const authenticated = this.options.authenticate
        ? await this.authenticate(this.options.authenticate, req, socket, identity, offered, protocol, handshake)
        : { protocol, session: undefined };
      if (authenticated === null) return;
      const verdict = this.options.beforeUpgrade
        ? await this.beforeUpgrade(this.options.beforeUpgrade, { identity, protocol: authenticated.protocol, session: authenticated.session, remoteAddress: req.socket.remoteAddress })
        : ({ accept: true } as UpgradeVerdict);
      if (!handshake.settle()) {
        if (verdict.accept) verdict.release?.();
        return;
      }
      if (!verdict.accept) {
        return this.reject(socket, { status: isErrorStatus(verdict.status) ? verdict.status : 503, reason: 'before-upgrade', detail: verdict.reason });
      }
      const connected = this.upgrade(req, socket, head, identity, authenticated.protocol, authenticated.session, verdict.ticket);
      if (!connected) verdict.release?.();
    })();
  }

  /** Runs the hook; null when the handshake was answered (refused) or ended meanwhile. */
  private async authenticate(
    hook: NonNullable<GatewayOptions['authenticate']>,
    req: IncomingMessage,
    socket: Duplex,
    identity: string,
    offered: string[],
    protocol: OcppProtocol,
    handshake: PendingHandshake,
  ): Promise<{ protocol: OcppProtocol; session: unknown } | null> {
    const request: AuthenticationRequest = {
      identity,
      protocols: offered,
      protocol,
      headers: req.headers,
      remoteAddress: req.socket.remoteAddress,
      password: basicAuthPasswordFor(headerValue(req.headers.authorization), identity),
      request: req,
    };
    if (socket instanceof TLSSocket) {
      const certificate = socket.getPeerCertificate();
      if (certificate && Object.keys(certificate).length > 0) request.clientCertificate = certificate;
      request.clientCertificateAuthorized = socket.authorized;
    }

    let result: AuthenticationResult;
    try {
      result = await hook(request);
    } catch (err) {
      if (!handshake.settle()) return null;
      this.logger.error(`OCPP authenticate() failed for ${JSON.stringify(identity)}: ${errorText(err)}`);
      this.reject(socket, { status: 500, reason: 'authentication-error' });
      return null;
    }
    if (!handshake.isOpen()) return null;
    const decision = this.decide(result, identity, offered);
    if ('rejection' in decision) {
      if (handshake.settle()) this.reject(socket, decision.rejection);
      return null;
    }
    return { protocol: decision.protocol ?? protocol, session: decision.session };
  }

  /** Runs the hook; a throw refuses the upgrade with 503. */
  private async beforeUpgrade(hook: NonNullable<GatewayOptions['beforeUpgrade']>, request: UpgradeRequest): Promise<UpgradeVerdict> {
    try {
      return await hook(request);
    } catch (err) {
      this.logger.error(`OCPP beforeUpgrade() failed for ${JSON.stringify(request.identity)}: ${errorText(err)}`);
      return { accept: false, status: 503, reason: 'service unavailable' };
    }
  }

  private decide(
    result: AuthenticationResult,
    identity: string,
    offered: string[],
  ): { rejection: Rejection } | { protocol?: OcppProtocol; session: unknown } {
    if (result === true) return { session: undefined };
    if (result === false) return { rejection: unauthorized(401) };
    if (typeof result === 'object' && result !== null && result.accept === true) {
      const { protocol } = result;
      if (protocol === undefined || (offered.includes(protocol) && this.protocols.includes(protocol))) {
        return { protocol, session: result.session };
      }
      this.logger.error(
        `OCPP authenticate() chose ${JSON.stringify(protocol)} for ${JSON.stringify(identity)}, which the client did not offer or we do not support`,
      );
      return { rejection: { status: 500, reason: 'authentication-error' } };
    }
    if (typeof result === 'object' && result !== null && result.accept === false) {
      const status = result.status !== undefined && isErrorStatus(result.status) ? result.status : 401;
      return { rejection: unauthorized(status, result.message) };
    }
    this.logger.error(`OCPP authenticate() returned an invalid result for ${JSON.stringify(identity)}`);
    return { rejection: { status: 500, reason: 'authentication-error' } };
  }

  /** Completes the handshake; false when ws gave it up (the client went away meanwhile). */
  private upgrade(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    identity: string,
    protocol: OcppProtocol,
    session: unknown,
    ticket?: unknown,
  ): boolean {
    socket.removeListener('error', destroyOnError); // ws takes over error handling
    this.chosen.set(req, protocol);
    const server = this.deflate && isOcpp2(protocol) ? this.deflate : this.plain;
    // Without verifyClient, ws completes (or gives up) the handshake synchronously.
    let connected = false;
    server.handleUpgrade(req, socket, head, (ws) => {
      connected = true;
      this.unupgraded.release(socket);
      this.clients.add(ws);
      // Without a listener, a bad frame from a charge point (ws then closes with 1002/1007/1009)
      // would be an unhandled 'error' event and crash the process.
      ws.on('error', (err) => this.logger.warn(`OCPP connection ${JSON.stringify(identity)}: ${err.message}`));
      ws.once('close', () => this.clients.delete(ws));
      try {
        this.options.onConnection(ws, { identity, protocol, session, remoteAddress: req.socket.remoteAddress, request: req, ticket });
      } catch (err) {
        this.logger.error(`OCPP onConnection() failed for ${JSON.stringify(identity)}: ${errorText(err)}`);
        ws.close(1011, 'internal error');
      }
    });
    return connected;
  }

  /** OCPP-J: with no common subprotocol, finish the handshake without the header, then close. */
  private refuseSubprotocol(req: IncomingMessage, socket: Duplex, head: Buffer, offered: string[]): void {
    socket.removeListener('error', destroyOnError);
    this.plain.handleUpgrade(req, socket, head, (ws) => {
      this.unupgraded.release(socket);
      this.refused.add(ws);
      ws.on('error', () => undefined);
      ws.once('close', () => this.refused.delete(ws));
      ws.close(1002, 'no supported subprotocol');
      this.notify('no-subprotocol', 1002, offered.join(', '));
    });
  }

  private reject(socket: Duplex, rejection: Rejection): void {
    this.notify(rejection.reason, rejection.status, rejection.detail);
    respond(socket, rejection.status, rejection.detail ?? STATUS_CODES[rejection.status] ?? '', rejection.headers);
  }

  private notify(reason: RejectionReason, status: number, detail: string | undefined): void {
    try {
      this.options.onRejected?.(reason, status, detail);
    } catch (err) {
      this.logger.error(`OCPP onRejected() threw: ${errorText(err)}`);
    }
  }
}

function unauthorized(status: number, message?: string): Rejection {
  // RFC 7235: a 401 names the scheme the client should use.
  const headers = status === 401 ? { 'WWW-Authenticate': 'Basic realm="OCPP", charset="UTF-8"' } : undefined;
  return { status, reason: 'unauthorized', detail: message, headers };
}

/** What ws would refuse anyway, checked before the authenticate hook spends anything on it. */
function checkWebSocketRequest(req: IncomingMessage): Rejection | null {
  if (req.method !== 'GET') return { status: 405, reason: 'bad-request', detail: 'method must be GET', headers: { Allow: 'GET' } };
  if (headerValue(req.headers.upgrade)?.toLowerCase() !== 'websocket') {
    return { status: 400, reason: 'bad-request', detail: 'Upgrade header must be "websocket"' };
  }
  if (!WS_KEY.test(headerValue(req.headers['sec-websocket-key']) ?? '')) {
    return { status: 400, reason: 'bad-request', detail: 'missing or invalid Sec-WebSocket-Key header' };
  }
  const version = headerValue(req.headers['sec-websocket-version']);
  if (version !== '13' && version !== '8') {
    return {
      status: 400,
      reason: 'bad-request',
      detail: 'missing or invalid Sec-WebSocket-Version header',
      headers: { 'Sec-WebSocket-Version': '13, 8' },
    };
  }
  return null;
}

/** Answers an upgrade request with a complete HTTP error response, then destroys the socket. */
function respond(socket: Duplex, status: number, body: string, headers: Record<string, string> = {}): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`,
    'Connection: close',
    'Content-Type: text/plain; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
  ];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  // A peer that stops reading must not keep the socket alive.
  const timer = setTimeout(() => socket.destroy(), FLUSH_TIMEOUT_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  socket.once('finish', () => socket.destroy());
  socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`);
}

function closeWithin(ws: WebSocket, code: number, reason: string, graceMs: number): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => ws.terminate(), graceMs);
    ws.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    ws.close(code, reason);
  });
}

function destroyOnError(this: Duplex): void {
  this.destroy();
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}

function isErrorStatus(status: number): boolean {
  return Number.isInteger(status) && status >= 400 && status <= 599;
}

function positiveInteger(option: string, value: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new InvalidOptionsError(option, `must be an integer from 1 to ${max}, got ${String(value)}`);
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? (err.stack ?? err.message) : String(err);
}
