import { describe, expect, it } from '@jest/globals';
import { createServer } from 'node:http';
import { HandlerRegistry } from '../../lib/cluster/handler-registry.js';
import { InMemoryAdapter, InMemoryBus } from '../../lib/cluster/in-memory-adapter.js';
import type { ClusterMessage } from '../../lib/cluster/envelope.js';
import { SILENT_LOGGER } from '../../lib/cluster/logger.js';
import { createNode } from '../../lib/create-node.js';
import { OcppValidationError } from '../../lib/protocol/errors.js';
import { SchemaValidator } from '../../lib/protocol/validator.js';
import { resolveOptions } from '../../lib/resolve-options.js';

describe('broadcastBatch through the node (one route for every call)', () => {
  it('refuses an invalid payload for a remote charge point without sending it', async () => {
    const bus = new InMemoryBus();
    const http = createServer();
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const host = createNode({
      options: resolveOptions({ nodeId: 'a', pingIntervalMs: 0 }),
      adapter: new InMemoryAdapter(bus),
      validator: new SchemaValidator(),
      handlers: new HandlerRegistry(),
      logger: SILENT_LOGGER,
    });
    await host.start(http);
    const a = host.node;
    const b = new InMemoryAdapter(bus);
    await b.connect('b', { localPresence: () => [] });
    const reachedB: ClusterMessage[] = [];
    await b.subscribe('node', (message) => {
      reachedB.push(message);
    });
    await b.setPresence('CP-B', 'ocpp1.6', Date.now());
    const [outcome] = await a.broadcastBatch(['CP-B'], 'Reset', { type: 'Sideways' }, { timeoutMs: 200 });
    await host.stop();
    http.close();
    expect((outcome as { error?: Error }).error).toBeInstanceOf(OcppValidationError);
    expect(reachedB).toEqual([]);
  });
});
