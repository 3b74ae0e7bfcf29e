import { versionFields, type ClusterMessage } from './envelope.js';
import type { EventAdapterInterface } from './event-adapter.interface.js';

/**
 * The node's transport with every published envelope stamped with the version fields of a node of
 * `version` (`versionFields`; an envelope that already has `v`, even undefined, keeps it: an answer
 * in the version of what it answers, a command forwarded as it came). Version 1 writes no field at
 * all, as the library did before versions existed.
 * A Proxy rather than a wrapper class, so the transport contract can grow without touching this.
 */
export function stampingWireVersion(adapter: EventAdapterInterface, version: number): EventAdapterInterface {
  const fields = versionFields(version);
  const stamp = (message: ClusterMessage): ClusterMessage => ('v' in message || fields.v === undefined ? message : { ...message, ...fields });
  const publish: EventAdapterInterface['publish'] = (to, message) => adapter.publish(to, stamp(message));
  const publishBatch: EventAdapterInterface['publishBatch'] = (messages) =>
    adapter.publishBatch(messages.map(({ to, message }) => ({ to, message: stamp(message) })));
  // Methods are bound once each (a bind per property read was a cost on every call's path).
  const bound = new WeakMap<(...args: never[]) => unknown, unknown>();
  return new Proxy(adapter, {
    get(target, property) {
      if (property === 'publish') return publish;
      if (property === 'publishBatch') return publishBatch;
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      let method = bound.get(value as (...args: never[]) => unknown);
      if (method === undefined) bound.set(value as (...args: never[]) => unknown, (method = value.bind(target)));
      return method;
    },
  });
}
