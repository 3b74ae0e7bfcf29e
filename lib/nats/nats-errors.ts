import { ClusterUnavailableError, OcppClusterError } from '../protocol/errors.js';

/** JetStream API error codes we branch on (nats-server's `err_code`). */
export const JS_CONSUMER_NOT_FOUND = 10014;
export const JS_STREAM_NOT_FOUND = 10059;
export const JS_WRONG_LAST_SEQUENCE = 10071;
export const JS_MAXIMUM_MESSAGES_EXCEEDED = 10077;
/** JetStream is there but cannot act yet: no placement peers, no meta leader, "temporarily unavailable". */
const JS_NOT_READY_CODES: ReadonlySet<number> = new Set([10005, 10008, 10009]);

/** The JetStream API error code of `error`, or undefined when it is not a JetStream API error. */
export function jsErrorCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'number') return code;
  const apiError = (error as { apiError?: () => { err_code?: number } } | null)?.apiError;
  return typeof apiError === 'function' ? apiError.call(error).err_code : undefined;
}

/** A compare-and-set lost: the key changed (or appeared) since the revision we wrote against. */
export function isRevisionConflict(error: unknown): boolean {
  return jsErrorCode(error) === JS_WRONG_LAST_SEQUENCE;
}

export function isStreamNotFound(error: unknown): boolean {
  const text = (error as Error | null)?.message ?? '';
  return jsErrorCode(error) === JS_STREAM_NOT_FOUND || /stream not found/i.test(text);
}

export function isConsumerNotFound(error: unknown): boolean {
  const text = (error as Error | null)?.message ?? '';
  return jsErrorCode(error) === JS_CONSUMER_NOT_FOUND || /consumer not found/i.test(text);
}

/** Nothing listens on the subject: the stream it belonged to is gone (or JetStream is off). */
export function isNoStream(error: unknown): boolean {
  const text = (error as Error | null)?.message ?? '';
  const name = (error as Error | null)?.name ?? (error as object | null)?.constructor?.name ?? '';
  return /no responders|jetstream is not enabled|JetStreamNotEnabled/i.test(`${name} ${text}`) || isStreamNotFound(error);
}

/**
 * A JetStream request that went unanswered or found JetStream not ready (a timeout, no
 * responders, a disconnected connection, a cluster electing its leaders): asking again later may
 * work. Not so a refusal that names a cause (bad config, a conflicting stream, JetStream off for
 * the account) nor a closed connection.
 */
export function isJetStreamNotAnswering(error: unknown): boolean {
  const name = (error as Error | null)?.name ?? '';
  const text = (error as Error | null)?.message ?? '';
  const code = jsErrorCode(error);
  if (code !== undefined) return JS_NOT_READY_CODES.has(code);
  if (name === 'TimeoutError') return true;
  // The client reports "no responders" on the JetStream API as JetStreamNotEnabled caused by it.
  if (name === 'JetStreamNotEnabled') return (error as Error).cause !== undefined && jsErrorCode((error as Error).cause) === undefined;
  if (name === 'RequestError') return /no responders|disconnected/i.test(`${text} ${((error as Error).cause as Error | undefined)?.message ?? ''}`);
  return false;
}

const CAUSES: ReadonlyArray<[RegExp, string]> = [
  [/ECONNREFUSED/, 'connection refused'],
  [/ENOTFOUND|EAI_AGAIN/, 'host not found'],
  [/TIMEOUT|timed out|timeout/i, 'no answer in time'],
  [/CONNECTION_CLOSED|connection closed|closed/i, 'connection closed'],
  [/DISCONNECT|disconnected/i, 'not connected'],
];

/**
 * Our typed errors pass through; a NATS failure becomes ClusterUnavailableError in our words:
 * "NATS at nats://127.0.0.1:4222 unreachable: no answer in time". A JetStream API refusal keeps
 * the server's own text, which names the cause.
 */
export function natsUnavailable(error: unknown, location: string): Error {
  if (error instanceof OcppClusterError) return error;
  const text = (error as Error)?.message ?? String(error);
  if (jsErrorCode(error) !== undefined) return new ClusterUnavailableError(`${location} refused the request: ${text}`);
  const cause = CAUSES.find(([pattern]) => pattern.test(text))?.[1];
  return new ClusterUnavailableError(`${location} unreachable: ${cause ?? text}`);
}
