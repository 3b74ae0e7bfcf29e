import { InvalidOptionsError } from '../protocol/errors.js';
import type { EventAdapterInterface } from './event-adapter.interface.js';

const REQUIRED_METHODS = [
  'connect',
  'disconnect',
  'publish',
  'publishBatch',
  'subscribe',
  'unsubscribe',
  'setPresence',
  'getPresence',
  'getPresenceBatch',
  'removePresence',
  'listPresence',
  'isNodeAlive',
  'isHealthy',
  'probe',
  'metrics',
] as const satisfies readonly (keyof EventAdapterInterface)[];

/**
 * Checks a custom transport once, at definition time, so a missing method fails at start-up
 * with its name instead of at the first cross-node call.
 */
export function defineAdapter<T extends EventAdapterInterface>(adapter: T): T {
  if (adapter === null || typeof adapter !== 'object') {
    throw new InvalidOptionsError('adapter', 'must be an object');
  }
  for (const method of REQUIRED_METHODS) {
    if (typeof (adapter as unknown as Record<string, unknown>)[method] !== 'function') {
      throw new InvalidOptionsError('adapter', `is missing method ${method}()`);
    }
  }
  if (typeof adapter.name !== 'string' || adapter.name.length === 0) {
    throw new InvalidOptionsError('adapter', 'needs a non-empty name');
  }
  return adapter;
}
