import 'reflect-metadata';
import { describe, expect, it } from '@jest/globals';
import { ConnectionClosedError, NodeShuttingDownError } from '../../lib/index.js';
import { connectedChargePoint } from '../support/charge-point.js';
import { startSampleApp } from '../support/ocpp-test-app.js';
import { withTimeout } from '../support/wait.js';

describe('shutdown', () => {
  it('app.close() closes charge point sockets with 1001, rejects pending calls, refuses new work and returns', async () => {
    const app = await startSampleApp({ nodeId: 'closing' });
    const client = await connectedChargePoint(app.wsUrl, 'CLOSE-1');
    client.handle('GetConfiguration', () => new Promise(() => undefined)); // never answers
    const closed = new Promise<{ code: number }>((resolve) => client.once('close', resolve));
    const pending = app.service.sendToClient('CLOSE-1', 'ocpp1.6', 'GetConfiguration', {}, { timeoutMs: 60_000 }).catch((e: unknown) => e);
    await new Promise((resolve) => setTimeout(resolve, 100));

    await withTimeout(app.close(), 10_000, 'app.close()');

    expect((await withTimeout(closed, 5_000, 'charge point close')).code).toBe(1001);
    expect(await withTimeout(pending, 5_000, 'pending call')).toBeInstanceOf(ConnectionClosedError);
    await expect(app.service.sendToClient('CLOSE-1', 'ocpp1.6', 'Reset', { type: 'Hard' })).rejects.toBeInstanceOf(NodeShuttingDownError);
    await expect(fetch(`${app.httpUrl}/chargers`)).rejects.toThrow();
  });
});
