import { InMemoryAdapter, InMemoryBus } from '../../lib/cluster/in-memory-adapter.js';
import { eventAdapterContract } from './event-adapter.contract.js';

// One process is the whole cluster: a crash and a clean leave look the same from inside.
let bus = new InMemoryBus();
eventAdapterContract('the in-memory transport', {
  setUp: async () => void (bus = new InMemoryBus()),
  tearDown: async () => undefined,
  adapter: () => new InMemoryAdapter(bus),
  crash: (adapter) => adapter.disconnect(),
  deathWithinMs: 1_000,
  parksCommands: true,
});
