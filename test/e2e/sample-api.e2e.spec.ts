import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connectedChargePoint, createRPCError } from '../support/charge-point.js';
import type { RpcClient } from '../support/charge-point.js';
import { startSampleApp } from '../support/ocpp-test-app.js';
import type { TestApp } from '../support/ocpp-test-app.js';
import { waitFor } from '../support/wait.js';

async function http(app: TestApp, method: string, path: string, body?: unknown) {
  const response = await fetch(`${app.httpUrl}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

describe('sample CSMS HTTP API (one node, in memory)', () => {
  let app: TestApp;
  let cp16: RpcClient;
  let cp201: RpcClient;

  beforeAll(async () => {
    app = await startSampleApp({ nodeId: 'sample-a' });
    // strictMode on the charge point: it validates every reply of ours against its own schemas.
    cp16 = await connectedChargePoint(app.wsUrl, 'CP-16', { protocols: ['ocpp1.6'], strictMode: true });
    cp201 = await connectedChargePoint(app.wsUrl, 'CP-201', { protocols: ['ocpp2.0.1'], strictMode: true });
    cp16.handle('Reset', ({ params }) => ({ status: params.type === 'Hard' ? 'Accepted' : 'Rejected' }));
    cp16.handle('ChangeAvailability', () => new Promise(() => undefined)); // never answers
    cp16.handle('UnlockConnector', () => {
      throw createRPCError('GenericError', 'connector jammed', { connector: 1 });
    });
    cp201.handle('Reset', () => ({ status: 'Accepted' }));
  });

  afterAll(async () => {
    await cp16?.close({ force: true }).catch(() => undefined);
    await cp201?.close({ force: true }).catch(() => undefined);
    await app?.close();
  });

  it('answers every station message of 1.6 with a schema-valid reply', async () => {
    const boot = await cp16.call('BootNotification', { chargePointVendor: 'V', chargePointModel: 'M' });
    expect(boot).toMatchObject({ status: 'Accepted', interval: 300 });
    expect(await cp16.call('Heartbeat', {})).toHaveProperty('currentTime');
    expect(await cp16.call('StatusNotification', { connectorId: 1, errorCode: 'NoError', status: 'Available' })).toEqual({});
    expect(await cp16.call('Authorize', { idTag: 'TAG1' })).toEqual({ idTagInfo: { status: 'Accepted' } });
    const start = await cp16.call('StartTransaction', { connectorId: 1, idTag: 'TAG1', meterStart: 0, timestamp: new Date().toISOString() });
    expect(start.transactionId).toEqual(expect.any(Number));
    expect(await cp16.call('MeterValues', { connectorId: 1, meterValue: [{ timestamp: new Date().toISOString(), sampledValue: [{ value: '10' }] }] })).toEqual({});
    expect(await cp16.call('StopTransaction', { transactionId: start.transactionId, meterStop: 10, timestamp: new Date().toISOString() })).toHaveProperty('idTagInfo');
    expect(await cp16.call('DataTransfer', { vendorId: 'acme', data: 'ping' })).toEqual({ status: 'Accepted', data: 'ping' });
  });

  it('answers every station message of 2.0.1 with a schema-valid reply', async () => {
    const boot = await cp201.call('BootNotification', { reason: 'PowerUp', chargingStation: { model: 'M', vendorName: 'V' } });
    expect(boot).toMatchObject({ status: 'Accepted', interval: 300 });
    expect(await cp201.call('Heartbeat', {})).toHaveProperty('currentTime');
    expect(
      await cp201.call('StatusNotification', { timestamp: new Date().toISOString(), connectorStatus: 'Available', evseId: 1, connectorId: 1 }),
    ).toEqual({});
    expect(await cp201.call('Authorize', { idToken: { idToken: 'T', type: 'ISO14443' } })).toEqual({ idTokenInfo: { status: 'Accepted' } });
    const event = await cp201.call('TransactionEvent', {
      eventType: 'Started',
      timestamp: new Date().toISOString(),
      triggerReason: 'Authorized',
      seqNo: 0,
      transactionInfo: { transactionId: 'tx-1' },
      idToken: { idToken: 'T', type: 'ISO14443' },
    });
    expect(event).toEqual({ idTokenInfo: { status: 'Accepted' } });
    expect(await cp201.call('DataTransfer', { vendorId: 'acme', data: { a: 1 } })).toEqual({ status: 'Accepted', data: { a: 1 } });
  });

  it('GET /chargers lists connected charge points', async () => {
    const { status, body } = await http(app, 'GET', '/chargers');
    expect(status).toBe(200);
    expect(body).toEqual([
      { identity: 'CP-16', protocol: 'ocpp1.6', nodeId: 'sample-a', connectedAt: expect.any(String) },
      { identity: 'CP-201', protocol: 'ocpp2.0.1', nodeId: 'sample-a', connectedAt: expect.any(String) },
    ]);
    expect(Number.isNaN(Date.parse(body[0].connectedAt))).toBe(false);
  });

  it('GET /chargers/:identity is 200 for a connected one and 404 otherwise', async () => {
    expect(await http(app, 'GET', '/chargers/CP-16')).toMatchObject({ status: 200, body: { identity: 'CP-16', protocol: 'ocpp1.6' } });
    expect((await http(app, 'GET', '/chargers/NOPE')).status).toBe(404);
  });

  it('POST a call returns the charger reply', async () => {
    expect(await http(app, 'POST', '/chargers/CP-16/calls/Reset', { type: 'Hard' })).toEqual({ status: 200, body: { result: { status: 'Accepted' } } });
  });

  it('POST to an unknown charger is 404 NotConnected', async () => {
    expect(await http(app, 'POST', '/chargers/GHOST/calls/Reset', { type: 'Hard' })).toMatchObject({
      status: 404,
      body: { error: 'NotConnected' },
    });
  });

  it('POST that the charger never answers is 504 Timeout', async () => {
    const response = await http(app, 'POST', '/chargers/CP-16/calls/ChangeAvailability?timeoutMs=300', { connectorId: 0, type: 'Operative' });
    expect(response).toMatchObject({ status: 504, body: { error: 'Timeout' } });
  });

  it('POST answered with CALLERROR is 502 with code, description and details', async () => {
    const response = await http(app, 'POST', '/chargers/CP-16/calls/UnlockConnector', { connectorId: 1 });
    expect(response.status).toBe(502);
    expect(response.body).toEqual({
      error: 'CallError',
      errorCode: 'GenericError',
      errorDescription: 'connector jammed',
      errorDetails: { connector: 1 },
    });
  });

  it('POST with a payload that breaks the schema is 400 ValidationError and never reaches the charger', async () => {
    const response = await http(app, 'POST', '/chargers/CP-16/calls/Reset', { type: 'Sideways' });
    expect(response).toMatchObject({ status: 400, body: { error: 'ValidationError', errorCode: 'PropertyConstraintViolation' } });
    const missing = await http(app, 'POST', '/chargers/CP-201/calls/Reset', {});
    expect(missing).toMatchObject({ status: 400, body: { error: 'ValidationError', errorCode: 'OccurrenceConstraintViolation' } });
  });

  it('POST /broadcast/:action summarises delivered and failed', async () => {
    // Reset {type:'Hard'} is valid for 1.6 and for 2.0.1 ({type:'Immediate'} would not be): one fails on 2.0.1's schema.
    const response = await http(app, 'POST', '/broadcast/Reset', { type: 'Hard' });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ delivered: 1, failed: 1, nodes: 1 });
  });

  it('GET /health is up', async () => {
    const response = await http(app, 'GET', '/health');
    expect(response).toMatchObject({ status: 200, body: { status: 'ok' } });
    expect(response.body.info.ocpp).toMatchObject({ status: 'up', nodeId: 'sample-a' });
  });

  it('a charger that disconnects leaves the list', async () => {
    await cp201.close();
    await waitFor('CP-201 to leave the list', async () => (await http(app, 'GET', '/chargers')).body.length === 1);
  });
});
