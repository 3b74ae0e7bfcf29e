import { InvalidOptionsError } from '../protocol/errors.js';
import { CompletedTransport } from './completed-transport.js';
import type { EventAdapterInterface } from './event-adapter.interface.js';
import type { TransportAdapter, TransportCoreOptions } from './transport-adapter.js';

const CONTRACT_METHODS = [
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
  'liveNodes',
  'isHealthy',
  'probe',
  'metrics',
] as const satisfies readonly (keyof EventAdapterInterface)[];

const SEED_METHODS = ['publish', 'subscribe', 'unsubscribe', 'disconnect'] as const satisfies readonly (keyof TransportAdapter)[];
const SEED_OPTIONAL_METHODS = ['publishBatch', 'setPresence', 'getPresence', 'removePresence'] as const satisfies readonly (keyof TransportAdapter)[];

function isFullContract(adapter: object): adapter is EventAdapterInterface {
  return typeof (adapter as { connect?: unknown }).connect === 'function';
}

function requireMethods(adapter: object, methods: readonly string[], form: string): void {
  for (const method of methods) {
    if (typeof (adapter as Record<string, unknown>)[method] !== 'function') {
      throw new InvalidOptionsError('adapter', `is missing method ${method}() (${form})`);
    }
  }
}

/**
 * Checks a custom transport once, at definition time, so a missing method fails at start-up with
 * its name instead of at the first cross-node call. Two forms:
 * - the seed's: publish, publishBatch?, subscribe, unsubscribe, disconnect, setPresence?,
 *   getPresence?, removePresence?; the core adds liveness, epochs and presence records;
 * - the full `EventAdapterInterface` (has `connect`), taken as it is.
 */
export function defineAdapter<T extends EventAdapterInterface>(adapter: T): T;
export function defineAdapter(adapter: TransportAdapter, options?: TransportCoreOptions): EventAdapterInterface;
export function defineAdapter(adapter: EventAdapterInterface | TransportAdapter, options?: TransportCoreOptions): EventAdapterInterface;
export function defineAdapter(adapter: EventAdapterInterface | TransportAdapter, options?: TransportCoreOptions): EventAdapterInterface {
  if (adapter === null || typeof adapter !== 'object') {
    throw new InvalidOptionsError('adapter', 'must be an object');
  }
  if (isFullContract(adapter)) {
    requireMethods(adapter, CONTRACT_METHODS, 'an adapter with connect() implements all of EventAdapterInterface');
    if (typeof adapter.name !== 'string' || adapter.name.length === 0) {
      throw new InvalidOptionsError('adapter', 'needs a non-empty name');
    }
    return adapter;
  }
  requireMethods(adapter, SEED_METHODS, 'a minimal transport has publish, subscribe, unsubscribe and disconnect');
  for (const method of SEED_OPTIONAL_METHODS) {
    const value = (adapter as unknown as Record<string, unknown>)[method];
    if (value !== undefined && typeof value !== 'function') throw new InvalidOptionsError('adapter', `${method} must be a function when given`);
  }
  if (adapter.name !== undefined && (typeof adapter.name !== 'string' || adapter.name.length === 0)) {
    throw new InvalidOptionsError('adapter', 'name must be a non-empty string when given');
  }
  return new CompletedTransport(adapter, options);
}
