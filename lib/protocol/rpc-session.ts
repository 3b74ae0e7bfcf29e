/**
 * One charge point's socket: outbound CALLs through a FIFO with one CALL in flight, per-call
 * timeouts and absolute deadlines, inbound dispatch, pings and an inbound rate limit.
 *
 * Decisions where the brief or the spec leave room:
 * - A queued call is rejected at its deadline (one session timer watches the earliest queued
 *   deadline), not only when its turn comes: a caller told "timed out" is told on time, and the
 *   call is never written afterwards.
 * - Repeated in-flight inbound id: CALLERROR RpcFrameworkError, which 1.6 spells GenericError
 *   (1.6 has no framework code; the frame itself is well formed, so not FormationViolation).
 * - The rate limit counts every inbound message (any frame type), before it is parsed: parsing
 *   is the cost a flood imposes. When the bucket is empty the socket is paused (TCP
 *   backpressure); messages ws had already buffered wait in a small local backlog, in order.
 * - Any inbound message and any pong count as a sign of life: a charger that talks but never
 *   answers pings stays; one silent for two ping intervals is terminated (a half-open socket
 *   ends within two intervals). Measured on the monotonic clock, so a wall-clock step cannot cut
 *   every socket at once. A paused socket is never judged half-open: we are not reading it.
 * - A CALLERROR from the charger is surfaced with its code in the negotiated version's
 *   spelling (normalizeErrorCode); a code unknown to the version becomes GenericError.
 * - A handler that returns undefined/null answers `{}`; a non-object answers InternalError.
 * - OCPP 2.1: a CALL whose (identity, id, action, payload) was answered with a CALLRESULT recently is a
 *   retry and gets that answer again without running the handler (AnsweredCalls: never for a
 *   BootNotification, nor for what was answered before one); a failed call may run again. A
 *   CALLRESULT that breaks its schema is answered with CALLRESULTERROR.
 */
import { randomBytes } from 'node:crypto';
import type { RawData, WebSocket } from 'ws';
import {
  encodeCall,
  encodeCallError,
  encodeCallResult,
  encodeCallResultError,
  encodeSend,
  isJsonObject,
  parseFrame,
  type ParsedFrame,
} from './codec.js';
import { AnsweredCalls, type Arrival } from './answered-calls.js';
import { callTimeoutProblem } from './call-timeout.js';
import { normalizeErrorCode } from './error-codes.js';
import type { FrameObserver } from './frame-log.js';
import {
  ConnectionClosedError,
  InvalidOptionsError,
  OcppCallError,
  OcppRpcError,
  OcppTimeoutError,
  OcppValidationError,
  PayloadTooLargeError,
  ProtocolMismatchError,
  QueueFullError,
  UnknownActionError,
} from './errors.js';
import { MessageType } from './message-type.js';
import { isOcpp2, isOcppProtocol, type OcppProtocol } from './protocol.js';
import { TokenBucket } from './token-bucket.js';

/** What the session needs from a schema validator (lib/protocol/validator.ts fits it). */
export interface PayloadValidator {
  validate(
    protocol: OcppProtocol,
    action: string,
    direction: 'request' | 'response',
    payload: unknown,
  ): { errorCode: string; description: string; details: Record<string, unknown> } | null;
  /** When present, outbound CALLs and SENDs of actions it does not know are refused unsent. */
  hasAction?(protocol: OcppProtocol, action: string): boolean;
}

type ValidationProblem = NonNullable<ReturnType<PayloadValidator['validate']>>;

export interface InboundCall {
  id: string;
  action: string;
  payload: Record<string, unknown>;
}

export interface RpcSessionLogger {
  warn(msg: string): void;
  error(msg: string): void;
}

export interface RpcSessionOptions {
  identity: string;
  protocol: OcppProtocol;
  /** An open socket; the session adds its listeners at construction. */
  socket: WebSocket;
  /** Default timeout of an outbound call, from the moment it is queued (integer ms, at most MAX_CALL_TIMEOUT_MS). */
  callTimeoutMs: number;
  /** Bound on outbound calls, queued plus in flight. */
  maxQueueSize: number;
  /**
   * 0 = no pings. Every inbound frame and every pong is a sign of life; a socket without one for
   * two intervals is terminated (some firmware never answers pings but talks all the time).
   */
  pingIntervalMs: number;
  /**
   * Largest frame we write, in bytes (UTF-8). A call or SEND over it is refused before sending
   * (PayloadTooLargeError); a reply over it is answered InternalError. Default: no limit.
   */
  maxPayload?: number;
  /** null (or undefined) = strict mode off. */
  validator: PayloadValidator | null;
  /** Inbound messages: a bucket of `capacity`, refilled at `refillPerSecond`. null (or undefined) = unlimited. */
  rateLimit: { capacity: number; refillPerSecond: number } | null;
  /**
   * Answers an inbound CALL. Return → CALLRESULT; throw OcppRpcError → CALLERROR with its code;
   * throw anything else → InternalError with a generic description (the error is only logged).
   */
  onCall(call: InboundCall): Promise<Record<string, unknown>> | Record<string, unknown>;
  /** OCPP 2.1 inbound SEND. */
  onSend?(message: InboundCall): void;
  onClose?(code: number, reason: string): void;
  /** A malformed or unexpected frame; `reason` is one of a few fixed strings. */
  onProtocolProblem?(reason: string): void;
  logger?: RpcSessionLogger;
  /** How long close() waits for the closing handshake before terminating. Default 5000. */
  closeTimeoutMs?: number;
  /**
   * OCPP 2.1 only: where answers are kept so that a retried CALL (same id, action and payload) gets
   * its first answer again instead of running the handler twice. Share one across the sessions of
   * a node so a retry on a new connection is caught too. Default: one per session.
   */
  answeredCalls?: AnsweredCalls;
  /** Sees every frame read and written (the frame log); null or undefined = off, at no per-frame cost. */
  onFrame?: FrameObserver | null;
}

export interface CallOptions {
  /** Overrides callTimeoutMs (integer ms, at most MAX_CALL_TIMEOUT_MS). */
  timeoutMs?: number;
  /** Absolute epoch ms; the earlier of this and now + timeoutMs applies. */
  deadline?: number;
  /**
   * Asked right before the frame is written (the call may wait in the queue for seconds): when
   * it returns false the call is rejected with `refusal()` and nothing is sent. Fencing uses it.
   */
  mayWrite?: () => boolean;
  /** The error for a call `mayWrite` refused. */
  refusal?: () => Error;
}

interface PendingCall {
  id: string;
  action: string;
  frame: string;
  deadline: number;
  mayWrite?: () => boolean;
  refusal?: () => Error;
  /** The time the call was given, for the timeout error. */
  budgetMs: number;
  resolve(payload: Record<string, unknown>): void;
  reject(error: unknown): void;
}

type Timer = ReturnType<typeof setTimeout>;

const WS_OPEN = 1;
const DEFAULT_CLOSE_TIMEOUT_MS = 5000;
const NOOP_LOGGER: RpcSessionLogger = { warn() {}, error() {} };

function isPositiveNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0;
}

function validateOptions(o: RpcSessionOptions): void {
  if (typeof o.identity !== 'string' || o.identity.length === 0) {
    throw new InvalidOptionsError('identity', 'must be a non-empty string');
  }
  if (!isOcppProtocol(o.protocol)) throw new InvalidOptionsError('protocol', 'must be ocpp1.6, ocpp2.0.1 or ocpp2.1');
  if (o.socket === null || typeof o.socket !== 'object' || o.socket.readyState !== WS_OPEN) {
    throw new InvalidOptionsError('socket', 'must be an open ws WebSocket');
  }
  const timeoutProblem = callTimeoutProblem(o.callTimeoutMs);
  if (timeoutProblem !== null) throw new InvalidOptionsError('callTimeoutMs', timeoutProblem);
  if (!Number.isInteger(o.maxQueueSize) || o.maxQueueSize < 1) {
    throw new InvalidOptionsError('maxQueueSize', 'must be an integer >= 1');
  }
  if (typeof o.pingIntervalMs !== 'number' || !Number.isFinite(o.pingIntervalMs) || o.pingIntervalMs < 0) {
    throw new InvalidOptionsError('pingIntervalMs', 'must be a number >= 0');
  }
  if (o.validator != null && typeof o.validator.validate !== 'function') {
    throw new InvalidOptionsError('validator', 'must be null or have a validate() method');
  }
  if (o.rateLimit != null) {
    if (typeof o.rateLimit !== 'object') throw new InvalidOptionsError('rateLimit', 'must be null or an object');
    if (!Number.isFinite(o.rateLimit.capacity) || o.rateLimit.capacity < 1) {
      throw new InvalidOptionsError('rateLimit.capacity', 'must be a number >= 1');
    }
    if (!isPositiveNumber(o.rateLimit.refillPerSecond)) {
      throw new InvalidOptionsError('rateLimit.refillPerSecond', 'must be a number > 0');
    }
  }
  if (typeof o.onCall !== 'function') throw new InvalidOptionsError('onCall', 'must be a function');
  if (o.maxPayload !== undefined && (!Number.isInteger(o.maxPayload) || o.maxPayload < 1)) {
    throw new InvalidOptionsError('maxPayload', 'must be an integer >= 1');
  }
  if (o.closeTimeoutMs !== undefined && !isPositiveNumber(o.closeTimeoutMs)) {
    throw new InvalidOptionsError('closeTimeoutMs', 'must be a number > 0');
  }
}

function toText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

function describeError(err: unknown): string {
  return err instanceof Error ? (err.stack ?? `${err.name}: ${err.message}`) : String(err);
}

export class RpcSession {
  readonly identity: string;
  readonly protocol: OcppProtocol;
  readonly connectedAt: number = Date.now();

  private readonly socket: WebSocket;
  private readonly callTimeoutMs: number;
  private readonly maxQueueSize: number;
  private readonly closeTimeoutMs: number;
  private readonly maxPayload: number;
  private readonly validator: PayloadValidator | null;
  private readonly logger: RpcSessionLogger;
  private readonly handlers: Pick<RpcSessionOptions, 'onCall' | 'onSend' | 'onClose' | 'onProtocolProblem'>;
  private readonly onFrame: FrameObserver | null;

  // Outbound: ids are a random per-session prefix plus a counter, far below 36 characters.
  // The prefix is drawn at the first outbound call: most sessions of a reconnect storm make none,
  // and randomBytes per connection was a measurable part of accepting one.
  private idPrefix: string | null = null;
  private idCounter = 0;
  private readonly queue: PendingCall[] = [];
  private inFlight: PendingCall | null = null;
  /**
   * Bounds the call in flight. Armed lazily: it stays armed after a call is answered, and when
   * it fires early for the call then in flight it re-arms for that call's deadline, so a steady
   * stream of calls costs a timer per timeout period instead of a setTimeout and a clearTimeout
   * per call (they showed in the owner's cross-node profile).
   */
  private inFlightTimer: Timer | null = null;
  private inFlightTimerAt = Infinity;
  /** One timer for the earliest deadline among queued calls. */
  private queueTimer: Timer | null = null;
  private queueTimerAt = Infinity;
  /** A late answer to this id is expected, not a protocol problem. */
  private lastExpiredId: string | null = null;

  // Inbound.
  private readonly inboundIds = new Set<string>();
  /** 2.1 only (null otherwise): answers replayed to retried CALLs. */
  private readonly answeredCalls: AnsweredCalls | null;
  private readonly bucket: TokenBucket | null;
  private readonly backlog: RawData[] = [];
  private paused = false;
  private resumeTimer: Timer | null = null;

  private readonly pingIntervalMs: number;
  private pingTimer: Timer | null = null;
  private nextPingAt = 0;
  /** performance.now() of the last inbound frame or pong (or of the connection). */
  private lastLifeAt = performance.now();
  /** performance.now() of the last ping sent, and of the first one sent since the last sign of life. */
  private lastPingAt = -Infinity;
  private firstUnansweredPingAt = Infinity;

  private closed = false;
  private closeTimer: Timer | null = null;
  private closePromise: Promise<void> | null = null;
  private resolveClose: (() => void) | null = null;

  constructor(options: RpcSessionOptions) {
    validateOptions(options);
    this.identity = options.identity;
    this.protocol = options.protocol;
    this.socket = options.socket;
    this.callTimeoutMs = options.callTimeoutMs;
    this.maxQueueSize = options.maxQueueSize;
    this.closeTimeoutMs = options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    this.maxPayload = options.maxPayload ?? Infinity;
    this.validator = options.validator ?? null;
    this.logger = options.logger ?? NOOP_LOGGER;
    this.handlers = {
      onCall: options.onCall,
      onSend: options.onSend,
      onClose: options.onClose,
      onProtocolProblem: options.onProtocolProblem,
    };
    this.onFrame = options.onFrame ?? null;
    this.answeredCalls = options.protocol === 'ocpp2.1' ? (options.answeredCalls ?? new AnsweredCalls()) : null;
    this.bucket = options.rateLimit
      ? new TokenBucket(options.rateLimit.capacity, options.rateLimit.refillPerSecond)
      : null;

    this.socket.on('message', this.onSocketMessage);
    this.socket.on('pong', this.onSocketPong);
    this.socket.on('error', this.onSocketError);
    this.socket.on('close', this.onSocketClose);
    this.pingIntervalMs = options.pingIntervalMs;
    if (this.pingIntervalMs > 0) {
      this.nextPingAt = this.lastLifeAt + this.pingIntervalMs;
      this.armPingTimer(this.nextPingAt);
    }
  }

  get isOpen(): boolean {
    return !this.closed && this.socket.readyState === WS_OPEN;
  }

  /** Outbound calls waiting for their turn (the one in flight not included). */
  get queuedCalls(): number {
    return this.queue.length;
  }

  /** Action of the outbound call waiting for its answer, if any. */
  get inFlightCall(): string | null {
    return this.inFlight === null ? null : this.inFlight.action;
  }

  /**
   * Sends a CALL after the ones already queued and resolves with the charger's CALLRESULT
   * payload. Rejects with OcppCallError, OcppTimeoutError (`sent` tells whether it went out),
   * OcppValidationError, QueueFullError or ConnectionClosedError.
   */
  call(action: string, payload: Record<string, unknown>, options?: CallOptions): Promise<Record<string, unknown>> {
    if (!this.isOpen) return Promise.reject(new ConnectionClosedError(this.identity));
    const now = Date.now();
    const timeoutMs = options?.timeoutMs ?? this.callTimeoutMs;
    const timeoutProblem = callTimeoutProblem(timeoutMs);
    if (timeoutProblem !== null) return Promise.reject(new InvalidOptionsError('timeoutMs', timeoutProblem));
    let deadline = now + timeoutMs;
    if (options?.deadline !== undefined) {
      if (typeof options.deadline !== 'number' || Number.isNaN(options.deadline)) {
        return Promise.reject(new InvalidOptionsError('deadline', 'must be epoch milliseconds'));
      }
      if (options.deadline < deadline) deadline = options.deadline;
    }
    if (deadline <= now) return Promise.reject(new OcppTimeoutError(this.identity, action, 0, false));
    if (this.validator !== null) {
      const unknown = this.unknownOutbound(action);
      if (unknown !== null) return Promise.reject(unknown);
      const problem = this.check(action, 'request', payload);
      if (problem !== null) {
        return Promise.reject(
          new OcppValidationError(action, 'request', problem.errorCode, problem.description, problem.details),
        );
      }
    }
    if (this.queue.length + (this.inFlight === null ? 0 : 1) >= this.maxQueueSize) {
      return Promise.reject(new QueueFullError(this.identity, this.maxQueueSize));
    }
    const id = this.nextId();
    let frame: string;
    try {
      frame = this.outboundFrame(action, () => encodeCall(id, action, payload));
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      this.queue.push({
        id,
        action,
        frame,
        deadline,
        mayWrite: options?.mayWrite,
        refusal: options?.refusal,
        budgetMs: deadline - now,
        resolve,
        reject,
      });
      this.pump();
      if (this.queue.length > 0) this.armQueueTimer(deadline);
    });
  }

  /** OCPP 2.1 SEND: fire and forget, outside the CALL queue. */
  sendMessage(action: string, payload: Record<string, unknown>): void {
    if (this.protocol !== 'ocpp2.1') throw new ProtocolMismatchError(this.identity, 'ocpp2.1', this.protocol);
    if (!this.isOpen) throw new ConnectionClosedError(this.identity);
    if (this.validator !== null) {
      const unknown = this.unknownOutbound(action);
      if (unknown !== null) throw unknown;
      const problem = this.check(action, 'request', payload);
      if (problem !== null) {
        throw new OcppValidationError(action, 'request', problem.errorCode, problem.description, problem.details);
      }
    }
    const id = this.nextId();
    this.send(this.outboundFrame(action, () => encodeSend(id, action, payload)));
  }

  /**
   * Our CALL or SEND as text, or a typed error: OcppValidationError when JSON cannot carry the
   * payload (too deep, BigInt, a cycle), PayloadTooLargeError when the frame exceeds maxPayload.
   */
  private outboundFrame(action: string, encode: () => string): string {
    let frame: string;
    try {
      frame = encode();
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new OcppValidationError(action, 'request', isOcpp2(this.protocol) ? 'FormatViolation' : 'FormationViolation', `payload cannot be encoded as JSON: ${reason}`);
    }
    const bytes = this.oversize(frame);
    if (bytes !== null) throw new PayloadTooLargeError(this.identity, action, this.maxPayload, bytes);
    return frame;
  }

  /** The frame's size in bytes when it exceeds maxPayload, else null (UTF-8 takes 1 to 3 bytes per UTF-16 unit). */
  private oversize(frame: string): number | null {
    if (frame.length * 3 <= this.maxPayload) return null;
    const bytes = Buffer.byteLength(frame);
    return bytes > this.maxPayload ? bytes : null;
  }

  /**
   * Closes the socket and resolves once it is closed; terminates it if the closing handshake
   * takes longer than closeTimeoutMs. Pending calls are rejected with ConnectionClosedError.
   */
  close(code = 1000, reason = ''): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.closePromise === null) {
      try {
        this.socket.close(code, reason);
      } catch (err) {
        return Promise.reject(err);
      }
      this.closePromise = new Promise((resolve) => {
        this.resolveClose = resolve;
      });
      this.closeTimer = setTimeout(this.onCloseTimeout, this.closeTimeoutMs);
      if (this.paused) {
        this.paused = false;
        this.socket.resume();
      }
    }
    return this.closePromise;
  }

  private nextId(): string {
    this.idPrefix ??= randomBytes(6).toString('base64url');
    return this.idPrefix + (++this.idCounter).toString(36);
  }

  /** Sends the next queued call if none is in flight; drops queued calls whose deadline passed. */
  private pump(): void {
    if (this.inFlight !== null || !this.isOpen) return;
    let next: PendingCall | undefined;
    while ((next = this.queue.shift()) !== undefined) {
      const now = Date.now();
      if (next.deadline <= now) {
        next.reject(new OcppTimeoutError(this.identity, next.action, next.budgetMs, false));
        continue;
      }
      if (next.mayWrite !== undefined && !next.mayWrite()) {
        next.reject(next.refusal?.() ?? new ConnectionClosedError(this.identity));
        continue;
      }
      this.inFlight = next;
      this.armInFlightTimer(next.deadline, now);
      this.send(next.frame);
      break;
    }
    if (this.queue.length === 0) this.clearQueueTimer();
  }

  private armInFlightTimer(deadline: number, now: number): void {
    // Armed for this deadline or sooner: when it fires it re-arms for whatever is in flight then.
    if (this.inFlightTimer !== null && this.inFlightTimerAt <= deadline) return;
    if (this.inFlightTimer !== null) clearTimeout(this.inFlightTimer);
    this.inFlightTimerAt = deadline;
    this.inFlightTimer = setTimeout(this.onInFlightTimeout, Math.max(1, deadline - now));
  }

  private armQueueTimer(at: number): void {
    if (at >= this.queueTimerAt) return;
    if (this.queueTimer !== null) clearTimeout(this.queueTimer);
    this.queueTimerAt = at;
    this.queueTimer = setTimeout(this.onQueueTimer, Math.max(1, at - Date.now()));
  }

  private clearQueueTimer(): void {
    if (this.queueTimer !== null) clearTimeout(this.queueTimer);
    this.queueTimer = null;
    this.queueTimerAt = Infinity;
  }

  private readonly onQueueTimer = (): void => {
    this.queueTimer = null;
    this.queueTimerAt = Infinity;
    const now = Date.now();
    let kept = 0;
    let earliest = Infinity;
    for (const pending of this.queue) {
      if (pending.deadline <= now) {
        pending.reject(new OcppTimeoutError(this.identity, pending.action, pending.budgetMs, false));
      } else {
        this.queue[kept++] = pending;
        if (pending.deadline < earliest) earliest = pending.deadline;
      }
    }
    this.queue.length = kept;
    if (kept > 0) this.armQueueTimer(earliest);
  };

  private readonly onInFlightTimeout = (): void => {
    this.inFlightTimer = null;
    this.inFlightTimerAt = Infinity;
    const pending = this.inFlight;
    if (pending === null) return;
    const now = Date.now();
    // Armed for an earlier call that was answered: this one's deadline has not come yet.
    if (pending.deadline > now) {
      this.armInFlightTimer(pending.deadline, now);
      return;
    }
    this.inFlight = null;
    this.lastExpiredId = pending.id;
    pending.reject(new OcppTimeoutError(this.identity, pending.action, pending.budgetMs, true));
    this.pump();
  };

  /** Takes the in-flight call if `id` is its id. */
  private takeInFlight(id: string, frameName: string): PendingCall | null {
    const pending = this.inFlight;
    if (pending === null || pending.id !== id) {
      // A late answer to the call that just timed out is expected; anything else is not.
      if (id !== this.lastExpiredId) this.problem(`${frameName} for unknown message id`);
      return null;
    }
    // The in-flight timer stays armed (see inFlightTimer): the next call usually reuses it.
    this.inFlight = null;
    return pending;
  }

  private readonly onSocketMessage = (data: RawData): void => {
    this.lastLifeAt = performance.now();
    if (this.bucket !== null && (this.backlog.length > 0 || !this.bucket.tryTake())) {
      this.backlog.push(data);
      this.throttle();
      return;
    }
    this.handleMessage(data);
  };

  private throttle(): void {
    // While closing, keep reading so that the closing handshake can complete.
    if (!this.paused && this.closePromise === null) {
      this.paused = true;
      this.socket.pause();
    }
    if (this.resumeTimer === null && this.bucket !== null) {
      this.resumeTimer = setTimeout(this.onResumeTimer, this.bucket.msUntilNextToken());
    }
  }

  private readonly onResumeTimer = (): void => {
    this.resumeTimer = null;
    const bucket = this.bucket;
    if (bucket === null) return;
    let data: RawData | undefined;
    while (!this.closed && this.backlog.length > 0) {
      if (!bucket.tryTake()) {
        this.resumeTimer = setTimeout(this.onResumeTimer, bucket.msUntilNextToken());
        return;
      }
      data = this.backlog.shift();
      if (data !== undefined) this.handleMessage(data);
    }
    if (!this.closed) {
      this.paused = false;
      this.socket.resume();
    }
  };

  /** Never throws: nothing a charger sends may escape into the socket's event loop. */
  private handleMessage(data: RawData): void {
    try {
      const text = toText(data);
      if (this.onFrame !== null) this.onFrame('in', text);
      const outcome = parseFrame(text, this.protocol);
      if (!outcome.ok) {
        this.problem(outcome.reason);
        if (outcome.reply !== null) this.write(outcome.reply);
        return;
      }
      this.dispatchFrame(outcome.frame);
    } catch (err) {
      this.logger.error(`${this.identity}: failed to handle a message: ${describeError(err)}`);
      this.problem('internal error');
    }
  }

  private dispatchFrame(frame: ParsedFrame): void {
    switch (frame.type) {
      case MessageType.CALL:
        this.handleInboundCall({ id: frame.id, action: frame.action, payload: frame.payload });
        return;
      case MessageType.CALLRESULT: {
        const pending = this.takeInFlight(frame.id, 'CALLRESULT');
        if (pending === null) return;
        const problem = this.validator === null ? null : this.check(pending.action, 'response', frame.payload);
        if (problem === null) {
          pending.resolve(frame.payload);
        } else {
          // 2.1 has a frame for telling the charge point its CALLRESULT was rejected.
          if (this.protocol === 'ocpp2.1') {
            this.write(encodeCallResultError(frame.id, problem.errorCode, problem.description, problem.details));
          }
          pending.reject(
            new OcppValidationError(pending.action, 'response', problem.errorCode, problem.description, problem.details),
          );
        }
        this.pump();
        return;
      }
      case MessageType.CALLERROR: {
        const pending = this.takeInFlight(frame.id, 'CALLERROR');
        if (pending === null) return;
        pending.reject(
          new OcppCallError(
            this.identity,
            pending.action,
            normalizeErrorCode(this.protocol, frame.errorCode),
            frame.errorDescription,
            frame.errorDetails,
          ),
        );
        this.pump();
        return;
      }
      case MessageType.CALLRESULTERROR:
        // The charger rejected one of our CALLRESULTs; there is nothing to answer.
        this.logger.warn(
          `${this.identity}: CALLRESULTERROR ${normalizeErrorCode(this.protocol, frame.errorCode)} for message ${JSON.stringify(frame.id)}`,
        );
        this.problem('CALLRESULTERROR received');
        return;
      case MessageType.SEND:
        this.handleSend({ id: frame.id, action: frame.action, payload: frame.payload });
        return;
    }
  }

  private handleInboundCall(call: InboundCall): void {
    if (this.inboundIds.has(call.id)) {
      this.problem('repeated message id');
      this.write(
        encodeCallError(this.protocol, call.id, 'RpcFrameworkError', 'A CALL with this message id is still being handled', {}),
      );
      return;
    }
    const arrival = this.answeredCalls?.arrive(this.identity, call);
    if (arrival?.replay !== undefined) {
      // A 2.1 retry of a CALL we answered: its first answer again, the handler does not run twice.
      this.write(arrival.replay);
      return;
    }
    if (this.validator !== null) {
      const problem = this.check(call.action, 'request', call.payload);
      if (problem !== null) {
        this.problem('invalid CALL payload');
        this.write(encodeCallError(this.protocol, call.id, problem.errorCode, problem.description, problem.details));
        return;
      }
    }
    this.inboundIds.add(call.id);
    void this.answer(call, arrival);
  }

  private async answer(call: InboundCall, arrival: Arrival | undefined): Promise<void> {
    let reply: string;
    try {
      const result = this.encodeResult(call, await this.handlers.onCall(call));
      // Only results are replayed: a call that failed had no effect, so a retry may run it again.
      if (result !== null && arrival !== undefined) this.answeredCalls?.remember(arrival, result);
      reply = result ?? this.internalError(call.id);
    } catch (err) {
      reply = this.encodeFailure(call, err);
    }
    this.inboundIds.delete(call.id);
    this.write(reply);
  }

  /** The CALLRESULT for a handler's result, or null (logged) when the result cannot be sent. */
  private encodeResult(call: InboundCall, result: unknown): string | null {
    const payload = result ?? {};
    if (!isJsonObject(payload)) {
      this.logger.error(`${this.identity}: handler for ${call.action} returned a non-object; answered InternalError`);
      return null;
    }
    if (this.validator !== null) {
      const problem = this.check(call.action, 'response', payload);
      if (problem !== null) {
        this.logger.error(
          `${this.identity}: reply to ${call.action} breaks its schema (${problem.errorCode}: ${problem.description}); answered InternalError`,
        );
        return null;
      }
    }
    const reply = encodeCallResult(call.id, payload);
    const bytes = this.oversize(reply);
    if (bytes !== null) {
      this.logger.error(`${this.identity}: reply to ${call.action} is ${bytes} bytes, over maxPayload (${this.maxPayload}); answered InternalError`);
      return null;
    }
    return reply;
  }

  private encodeFailure(call: InboundCall, err: unknown): string {
    if (err instanceof OcppRpcError) {
      try {
        const full = encodeCallError(this.protocol, call.id, err.errorCode, err.errorDescription, err.errorDetails);
        if (this.oversize(full) === null) return full;
      } catch {
        // errorDetails that JSON cannot carry (cycles, BigInt): fall through.
      }
      // Keep the code, drop the details (too large for maxPayload, or not JSON).
      const bare = encodeCallError(this.protocol, call.id, err.errorCode, err.errorDescription, {});
      return this.oversize(bare) === null ? bare : this.internalError(call.id);
    }
    this.logger.error(`${this.identity}: handler for ${call.action} failed: ${describeError(err)}`);
    return this.internalError(call.id);
  }

  private internalError(id: string): string {
    return encodeCallError(this.protocol, id, 'InternalError', 'Internal error', {});
  }

  private handleSend(message: InboundCall): void {
    if (this.validator !== null) {
      const problem = this.check(message.action, 'request', message.payload);
      if (problem !== null) {
        this.logger.warn(`${this.identity}: SEND ${message.action} breaks its schema: ${problem.description}`);
        this.problem('invalid SEND payload');
        return;
      }
    }
    const onSend = this.handlers.onSend;
    if (onSend === undefined) return;
    try {
      onSend(message);
    } catch (err) {
      this.logger.error(`${this.identity}: SEND handler for ${message.action} failed: ${describeError(err)}`);
    }
  }

  /** An action this connection's protocol does not define: it must not reach the charger. */
  private unknownOutbound(action: string): UnknownActionError | null {
    if (this.validator?.hasAction === undefined || this.validator.hasAction(this.protocol, action)) return null;
    return new UnknownActionError(action, [this.protocol], 'is not an action of the charger\'s protocol');
  }

  /** Runs the validator; a validator that throws counts as an internal problem. */
  private check(action: string, direction: 'request' | 'response', payload: unknown): ValidationProblem | null {
    if (this.validator === null) return null;
    try {
      return this.validator.validate(this.protocol, action, direction, payload);
    } catch (err) {
      this.logger.error(`${this.identity}: validator failed on ${action} ${direction}: ${describeError(err)}`);
      return { errorCode: 'InternalError', description: 'Validation failed', details: {} };
    }
  }

  private write(frame: string): void {
    if (this.isOpen) this.send(frame);
  }

  /** Every frame to the charger goes out here. */
  private send(frame: string): void {
    this.socket.send(frame);
    if (this.onFrame !== null) this.onFrame('out', frame);
  }

  private problem(reason: string): void {
    const onProblem = this.handlers.onProtocolProblem;
    if (onProblem === undefined) return;
    try {
      onProblem(reason);
    } catch (err) {
      this.logger.error(`${this.identity}: onProtocolProblem failed: ${describeError(err)}`);
    }
  }

  private armPingTimer(at: number): void {
    this.pingTimer = setTimeout(this.onPingTimer, Math.max(1, Math.ceil(at - performance.now())));
    this.pingTimer.unref();
  }

  /** Wakes at the next ping, or earlier when the socket would by then have been silent too long. */
  private readonly onPingTimer = (): void => {
    this.pingTimer = null;
    if (!this.isOpen) return;
    const now = performance.now();
    if (this.paused) this.lastLifeAt = now;
    if (now >= this.silentFrom()) {
      // Timers run before the event loop reads the sockets: after this process stalled, the
      // charger's pong may be waiting unread. Judge once this turn's reads are done.
      setImmediate(this.onSilenceCheck);
      return;
    }
    if (now >= this.nextPingAt) {
      this.socket.ping();
      if (this.lastPingAt <= this.lastLifeAt) this.firstUnansweredPingAt = now;
      this.lastPingAt = now;
      this.nextPingAt = now + this.pingIntervalMs;
    }
    this.armPingTimer(Math.min(this.nextPingAt, this.silentFrom()));
  };

  /**
   * When the socket counts as dead: no frame and no pong for two intervals, and a ping unanswered
   * for a full interval. A node that stalled past two intervals sent no ping meanwhile; its
   * chargers are not silent for that, they get a ping and an interval to answer it.
   */
  private silentFrom(): number {
    if (this.lastPingAt <= this.lastLifeAt) return Infinity;
    return Math.max(this.lastLifeAt + 2 * this.pingIntervalMs, this.firstUnansweredPingAt + this.pingIntervalMs);
  }

  /** The silence seen by the ping timer, judged again after this turn's socket reads. */
  private readonly onSilenceCheck = (): void => {
    if (!this.isOpen || this.pingTimer !== null) return;
    if (performance.now() < this.silentFrom()) {
      // Something was read after all: carry on pinging.
      this.onPingTimer();
      return;
    }
    this.logger.warn(`${this.identity}: no frame and no pong for two ping intervals; terminating the socket`);
    this.socket.terminate();
  };

  private readonly onSocketPong = (): void => {
    this.lastLifeAt = performance.now();
  };

  private readonly onSocketError = (err: Error): void => {
    // ws closes the socket after an error; 'close' does the cleanup.
    this.logger.warn(`${this.identity}: socket error: ${err.message}`);
    this.problem('socket error');
  };

  private readonly onCloseTimeout = (): void => {
    this.closeTimer = null;
    this.socket.terminate();
  };

  private readonly onSocketClose = (code: number, reason: Buffer): void => {
    this.closed = true;
    for (const timer of [this.inFlightTimer, this.queueTimer, this.resumeTimer, this.closeTimer, this.pingTimer]) {
      if (timer !== null) clearTimeout(timer);
    }
    this.inFlightTimer = this.queueTimer = this.resumeTimer = this.closeTimer = this.pingTimer = null;
    this.queueTimerAt = this.inFlightTimerAt = Infinity;

    const pending = this.inFlight;
    this.inFlight = null;
    if (pending !== null) pending.reject(new ConnectionClosedError(this.identity, code, true));
    for (const queued of this.queue.splice(0)) queued.reject(new ConnectionClosedError(this.identity, code));
    this.backlog.length = 0;
    this.inboundIds.clear();

    this.resolveClose?.();
    this.resolveClose = null;
    const onClose = this.handlers.onClose;
    if (onClose === undefined) return;
    try {
      onClose(code, reason.toString('utf8'));
    } catch (err) {
      this.logger.error(`${this.identity}: onClose failed: ${describeError(err)}`);
    }
  };
}
