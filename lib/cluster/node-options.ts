import type { AnsweredCallsOptions } from '../protocol/answered-calls.js';
import type { FrameLogOptions } from '../protocol/frame-log.js';
import type { OcppProtocol } from '../protocol/protocol.js';

/**
 * What the node needs of the module's options, after defaults. The module's resolved options
 * satisfy it; the node never sees the rest (the gateway's, the transport's), so cluster/ does
 * not reach gateway or redis through the options' types.
 */
export interface NodeOptions {
  nodeId: string;
  protocols: OcppProtocol[];
  maxIdentityLength: number;
  maxPayload: number;
  callTimeoutMs: number;
  maxQueueSize: number;
  pingIntervalMs: number;
  rateLimit: { capacity: number; refillPerSecond: number } | false;
  broadcastConcurrency: number;
  ownerCacheMs: number;
  refuseUpgradesWhileTransportDown: boolean;
  /** Upgrades are refused while the event loop is later than this (false: never). */
  maxEventLoopDelayMs: number | false;
  drain: { windowMs: number; settleMs: number };
  retryCache: Required<AnsweredCallsOptions>;
  /** The cluster envelope version the node writes and the newest it reads. */
  wireVersion: number;
  /** The frame hook (audit log); undefined = off. */
  frameLog?: FrameLogOptions;
}
