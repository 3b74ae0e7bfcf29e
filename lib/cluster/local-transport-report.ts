import type { AdapterMetrics, TransportProbe } from './event-adapter.interface.js';

/** What a transport without streams (no consumer lag, nothing to ping) reports about itself. */
export interface LocalTransportState {
  connection: string;
  ok: boolean;
  error?: string;
  livenessHeld: boolean;
  consumerRunning: boolean;
  /** Messages handed to a handler that has not settled yet. */
  pending: number;
  subscriptions: number;
  delivered: number;
}

export function localProbe(state: LocalTransportState): TransportProbe {
  const connection = state.error === undefined ? { ok: state.ok, rttMs: state.ok ? 0 : null } : { ok: state.ok, rttMs: null, error: state.error };
  return {
    connections: { [state.connection]: connection },
    livenessHeld: state.livenessHeld,
    consumerRunning: state.consumerRunning,
    consumerLag: 0,
    pendingMessages: state.pending,
  };
}

export function localMetrics(state: LocalTransportState, extra: Record<string, number> = {}): AdapterMetrics {
  return { pendingMessages: state.pending, consumerLag: 0, activeSubscriptions: state.subscriptions, delivered: state.delivered, ...extra };
}
