import type { OutcomeKind } from './records.js';

/**
 * The sample's error bodies (sample/call-error.mapper.ts) → what the caller was told. A missing
 * `sent`/`maybeDelivered` flag is kept as "unknown", never read as a promise of non-delivery,
 * except for NotConnected: without `maybeDelivered: true` it says "not delivered".
 */
export function outcomeOfError(status: number, body: unknown): OutcomeKind {
  const error = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
  switch (error.error) {
    case 'NotConnected':
      return error.maybeDelivered === true ? 'not-connected-maybe' : 'not-connected';
    case 'Timeout':
      if (error.sent === true) return 'timeout-sent';
      if (error.sent === false) return 'timeout-not-sent';
      return 'timeout-unknown';
    case 'CallError':
    case 'ValidationError':
      return 'call-error';
    case 'Unavailable':
      return error.sent === true ? 'unavailable-sent' : 'unavailable';
    case 'QueueFull':
      return 'queue-full';
    case 'BadRequest':
      return 'bad-request';
    case 'InternalError':
      return 'internal-error';
  }
  if (status === 500) return 'internal-error';
  if (status === 503) return 'unavailable';
  return 'other-http';
}

/** One unicast call's HTTP answer. */
export function outcomeOfAnswer(status: number, body: unknown): OutcomeKind {
  return status === 200 ? 'result' : outcomeOfError(status, body);
}

/** One entry of a broadcast-batch answer (`{ status: 'fulfilled', result } | { status: 'rejected', error }`). */
export function outcomeOfBatchEntry(entry: Record<string, unknown>): OutcomeKind {
  if (entry.status === 'fulfilled') return 'result';
  return outcomeOfError(0, entry.error);
}

/** Whether a unicast answer says the command certainly never reached the charge point. */
export function promisesNotDelivered(outcome: OutcomeKind): boolean {
  return outcome === 'not-connected' || outcome === 'timeout-not-sent' || outcome === 'refused';
}
