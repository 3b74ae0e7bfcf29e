import type { ClusterLogger } from '../cluster/logger.js';
import { ClusterUnavailableError } from '../protocol/errors.js';
import { isJetStreamNotAnswering } from './nats-errors.js';

const FIRST_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 2000;

/** A step found that an answer it needs has not come yet (e.g. a heartbeat): try again later. */
export class NotAnsweredYetError extends Error {
  override readonly name = 'NotAnsweredYetError';
}

export interface ConnectRetryOptions {
  /** Total time for all attempts; no new attempt starts after it (0: one attempt only). */
  budgetMs: number;
  /** Aborted when the adapter is disconnected or aborted meanwhile: no further attempt, no wait. */
  stop: AbortSignal;
  logger: ClusterLogger;
  /** "NATS at nats://..." for the messages. */
  location: () => string;
  /** What the attempt was making or opening when it failed ("stream x"), for the messages. */
  step: () => string;
}

/**
 * Runs `attempt` until it succeeds, again after a backoff while it fails because JetStream did not
 * answer or was not ready (a replicated stream's creation answered after the request timeout, a
 * cluster still electing its leaders after a restart). Any other failure ends it at once, as does
 * `stop`. `attempt` must be idempotent: what a timed-out attempt did create is found by the next.
 */
export async function retryWhileUnanswered<T>(attempt: () => Promise<T>, options: ConnectRetryOptions): Promise<T> {
  const deadline = Date.now() + options.budgetMs;
  let backoffMs = FIRST_BACKOFF_MS;
  for (let attempts = 1; ; attempts++) {
    if (options.stop.aborted) throw stopped();
    try {
      const result = await attempt();
      if (options.stop.aborted) throw stopped();
      return result;
    } catch (error) {
      if (options.stop.aborted) throw stopped();
      if (!(error instanceof NotAnsweredYetError) && !isJetStreamNotAnswering(error)) throw error;
      const leftMs = deadline - Date.now();
      if (leftMs <= 0) {
        throw new ClusterUnavailableError(
          `${options.location()} did not answer ${options.step()} (${unansweredCause(error)}); gave up after ${attempts} attempt(s) within connectTimeoutMs ${options.budgetMs} ms`,
        );
      }
      const waitMs = Math.min(backoffMs, leftMs);
      options.logger.warn(`joining: ${options.step()} failed (${unansweredCause(error)}); attempt ${attempts + 1} in ${waitMs} ms (${leftMs} ms of connectTimeoutMs left)`);
      await sleepUnlessStopped(waitMs, options.stop);
      backoffMs = Math.min(backoffMs * 2, MAX_BACKOFF_MS);
    }
  }
}

/** Our words for a failure isJetStreamNotAnswering accepts. */
function unansweredCause(error: unknown): string {
  const { name, message } = error as Error;
  if (name === 'TimeoutError') return 'no answer in time';
  if (name === 'JetStreamNotEnabled') return 'no responders on the JetStream API';
  return message;
}

function stopped(): ClusterUnavailableError {
  return new ClusterUnavailableError('connect() stopped: the adapter was disconnected while joining');
}

function sleepUnlessStopped(ms: number, stop: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      stop.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    stop.addEventListener('abort', done, { once: true });
  });
}
