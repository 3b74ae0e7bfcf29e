import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { defineAdapter } from './cluster/define-adapter.js';
import { WIRE_VERSION } from './cluster/envelope.js';
import { validateConnectionRateLimit } from './gateway/connection-rate-limiter.js';
import { callTimeoutProblem } from './protocol/call-timeout.js';
import { InvalidOptionsError } from './protocol/errors.js';
import { DEFAULT_ANSWERED_CALLS_OPTIONS } from './protocol/answered-calls.js';
import { isOcppProtocol, SUPPORTED_PROTOCOLS } from './protocol/protocol.js';
import type { OcppClusterOptions, ResolvedOcppClusterOptions } from './ocpp-cluster.options.js';

const NODE_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

function defaultNodeId(): string {
  const fromEnv = process.env.OCPP_NODE_ID;
  if (fromEnv) return fromEnv;
  const host = hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 48);
  return `${host}-${randomBytes(3).toString('hex')}`;
}

function positiveInteger(name: string, value: unknown, { allowZero = false } = {}): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || (!allowZero && value === 0)) {
    throw new InvalidOptionsError(name, `must be a ${allowZero ? 'non-negative' : 'positive'} integer, got ${String(value)}`);
  }
}

/** Applies defaults and validates once at start-up; the error names the bad option. */
export function resolveOptions(options: OcppClusterOptions = {}): ResolvedOcppClusterOptions {
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionsError('options', 'must be an object');
  }
  const resolved: ResolvedOcppClusterOptions = {
    protocols: options.protocols ?? [...SUPPORTED_PROTOCOLS],
    path: options.path ?? '/ocpp',
    port: options.port,
    host: options.host,
    tls: options.tls,
    nodeId: options.nodeId ?? defaultNodeId(),
    maxIdentityLength: options.maxIdentityLength ?? 48,
    identityPattern: options.identityPattern,
    authenticate: options.authenticate,
    maxPayload: options.maxPayload ?? 64 * 1024,
    perMessageDeflate: options.perMessageDeflate ?? true,
    maxConnections: options.maxConnections,
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? 10_000,
    maxPendingHandshakes: options.maxPendingHandshakes ?? 5_000,
    connectionRateLimit: options.connectionRateLimit,
    callTimeoutMs: options.callTimeoutMs ?? 30_000,
    maxQueueSize: options.maxQueueSize ?? 100,
    pingIntervalMs: options.pingIntervalMs ?? 30_000,
    strictMode: options.strictMode ?? true,
    validators: options.validators ?? {},
    rateLimit: options.rateLimit ?? { capacity: 100, refillPerSecond: 50 },
    broadcastConcurrency: options.broadcastConcurrency ?? 200,
    ownerCacheMs: options.ownerCacheMs ?? 1_000,
    retryCache: { ...DEFAULT_ANSWERED_CALLS_OPTIONS, ...options.retryCache },
    adapter: options.adapter === undefined ? undefined : defineAdapter(options.adapter),
    redis: options.redis,
    refuseUpgradesWhileTransportDown: options.refuseUpgradesWhileTransportDown ?? true,
    maxEventLoopDelayMs: options.maxEventLoopDelayMs ?? 1_000,
    drain: { windowMs: options.drain?.windowMs ?? 10_000, settleMs: options.drain?.settleMs ?? 10_000 },
    health: {
      pingTimeoutMs: options.health?.pingTimeoutMs ?? 1_000,
      lagDegraded: options.health?.lagDegraded ?? 1_000,
      lagDown: options.health?.lagDown ?? 10_000,
    },
    metricsRegistry: options.metricsRegistry,
    logging: options.logging ?? true,
    frameLog: options.frameLog,
    wireVersion: options.wireVersion ?? WIRE_VERSION,
  };

  if (!Array.isArray(resolved.protocols) || resolved.protocols.length === 0) {
    throw new InvalidOptionsError('protocols', 'must be a non-empty array');
  }
  for (const protocol of resolved.protocols) {
    if (!isOcppProtocol(protocol)) {
      throw new InvalidOptionsError('protocols', `unknown protocol ${JSON.stringify(protocol)} (use ${SUPPORTED_PROTOCOLS.join(', ')})`);
    }
  }
  if (typeof resolved.path !== 'string' || !resolved.path.startsWith('/') || resolved.path.length > 1 && resolved.path.endsWith('/')) {
    throw new InvalidOptionsError('path', 'must start with "/" and not end with "/"');
  }
  if (resolved.port !== undefined) positiveInteger('port', resolved.port, { allowZero: true });
  if (typeof resolved.nodeId !== 'string' || !NODE_ID_PATTERN.test(resolved.nodeId)) {
    throw new InvalidOptionsError('nodeId', 'must be 1-64 characters of A-Z a-z 0-9 . _ -');
  }
  positiveInteger('maxIdentityLength', resolved.maxIdentityLength);
  positiveInteger('wireVersion', resolved.wireVersion);
  if (resolved.identityPattern !== undefined && !(resolved.identityPattern instanceof RegExp)) {
    throw new InvalidOptionsError('identityPattern', 'must be a RegExp');
  }
  if (resolved.frameLog !== undefined) {
    if (resolved.frameLog === null || typeof resolved.frameLog.onFrame !== 'function') {
      throw new InvalidOptionsError('frameLog.onFrame', 'must be a function');
    }
    if (resolved.frameLog.redact !== undefined && typeof resolved.frameLog.redact !== 'function') {
      throw new InvalidOptionsError('frameLog.redact', 'must be a function');
    }
  }
  if (resolved.authenticate !== undefined && typeof resolved.authenticate !== 'function') {
    throw new InvalidOptionsError('authenticate', 'must be a function');
  }
  positiveInteger('maxPayload', resolved.maxPayload);
  if (resolved.maxConnections !== undefined) positiveInteger('maxConnections', resolved.maxConnections);
  const handshakeTimeout = callTimeoutProblem(resolved.handshakeTimeoutMs);
  if (handshakeTimeout !== null) throw new InvalidOptionsError('handshakeTimeoutMs', handshakeTimeout);
  positiveInteger('maxPendingHandshakes', resolved.maxPendingHandshakes);
  if (resolved.maxEventLoopDelayMs !== false) positiveInteger('maxEventLoopDelayMs', resolved.maxEventLoopDelayMs);
  if (resolved.connectionRateLimit !== undefined) validateConnectionRateLimit(resolved.connectionRateLimit);
  const callTimeout = callTimeoutProblem(resolved.callTimeoutMs);
  if (callTimeout !== null) throw new InvalidOptionsError('callTimeoutMs', callTimeout);
  positiveInteger('maxQueueSize', resolved.maxQueueSize);
  positiveInteger('pingIntervalMs', resolved.pingIntervalMs, { allowZero: true });
  positiveInteger('broadcastConcurrency', resolved.broadcastConcurrency);
  positiveInteger('ownerCacheMs', resolved.ownerCacheMs, { allowZero: true });
  if (options.retryCache !== undefined && (options.retryCache === null || typeof options.retryCache !== 'object')) {
    throw new InvalidOptionsError('retryCache', 'must be { ttlMs?, maxBytesPerChargePoint?, maxBytesPerNode? }');
  }
  positiveInteger('retryCache.ttlMs', resolved.retryCache.ttlMs);
  positiveInteger('retryCache.maxBytesPerChargePoint', resolved.retryCache.maxBytesPerChargePoint);
  positiveInteger('retryCache.maxBytesPerNode', resolved.retryCache.maxBytesPerNode);
  if (resolved.retryCache.maxBytesPerNode < resolved.retryCache.maxBytesPerChargePoint) {
    throw new InvalidOptionsError('retryCache.maxBytesPerNode', 'must be at least retryCache.maxBytesPerChargePoint');
  }
  if (resolved.rateLimit !== false) {
    if (typeof resolved.rateLimit !== 'object' || resolved.rateLimit === null) {
      throw new InvalidOptionsError('rateLimit', 'must be false or { capacity, refillPerSecond }');
    }
    positiveInteger('rateLimit.capacity', resolved.rateLimit.capacity);
    if (typeof resolved.rateLimit.refillPerSecond !== 'number' || !(resolved.rateLimit.refillPerSecond > 0)) {
      throw new InvalidOptionsError('rateLimit.refillPerSecond', 'must be a positive number');
    }
  }
  positiveInteger('drain.windowMs', resolved.drain.windowMs, { allowZero: true });
  positiveInteger('drain.settleMs', resolved.drain.settleMs, { allowZero: true });
  positiveInteger('health.pingTimeoutMs', resolved.health.pingTimeoutMs);
  positiveInteger('health.lagDegraded', resolved.health.lagDegraded, { allowZero: true });
  positiveInteger('health.lagDown', resolved.health.lagDown, { allowZero: true });
  if (resolved.health.lagDown < resolved.health.lagDegraded) {
    throw new InvalidOptionsError('health.lagDown', 'must be at least health.lagDegraded');
  }
  return resolved;
}
