import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import { WebSocket } from 'ws';
import {
  NotConnectedError,
  OcppCallError,
  OcppHandler,
  OcppRpcError,
  OcppTimeoutError,
  OcppValidationError,
  OnChargerConnected,
  OnChargerDisconnected,
  UnknownActionError,
} from '../../lib/index.js';
import type { AuthenticationRequest, ChargerInfo, OcppContext } from '../../lib/index.js';
import { chargePoint, connectedChargePoint, createRPCError } from '../support/charge-point.js';
import { startModuleApp } from '../support/ocpp-test-app.js';
import type { TestApp } from '../support/ocpp-test-app.js';
import { waitFor, withTimeout } from '../support/wait.js';

const seenContexts: OcppContext[] = [];
const connectionEvents: string[] = [];

@Injectable()
class Handlers {
  @OcppHandler('BootNotification')
  boot(_payload: unknown, context: OcppContext) {
    seenContexts.push(context);
    return { status: 'Accepted' as const, currentTime: new Date().toISOString(), interval: 300 };
  }

  @OcppHandler('Heartbeat')
  heartbeat() {
    return { currentTime: new Date().toISOString() };
  }

  @OcppHandler('Authorize', { protocols: ['ocpp1.6'] })
  authorize(): never {
    throw new OcppRpcError('SecurityError', 'not booted yet', { hint: 'boot first' });
  }

  // 1.6 only: a 2.x StatusNotification has no handler, which 2.x charge points must hear as NotSupported.
  @OcppHandler('StatusNotification', { protocols: ['ocpp1.6'] })
  status(): never {
    throw new Error('database password is hunter2');
  }

  @OnChargerConnected()
  onConnected(charger: ChargerInfo) {
    connectionEvents.push(`connected:${charger.identity}`);
  }

  @OnChargerDisconnected()
  onDisconnected(charger: ChargerInfo & { code: number }) {
    connectionEvents.push(`disconnected:${charger.identity}:${charger.code}`);
  }
}

const PASSWORD_1_6 = Buffer.from([0x00, 0xff, 0x10, 0x80, 0xc3, 0x28, 0x7f, 0x01, 0xfe, 0x22, 0x3a, 0x00, 0x99, 0xa0, 0x0d, 0x0a, 0x41, 0x42, 0xe2, 0x82]);
const authRequests: AuthenticationRequest[] = [];

describe('charge points against one node (ocpp-rpc RPCClient)', () => {
  let app: TestApp;

  beforeAll(async () => {
    app = await startModuleApp(
      {
        nodeId: 'proto-node',
        pingIntervalMs: 300,
        authenticate: (request) => {
          authRequests.push(request);
          if (request.identity.startsWith('SECURE')) {
            if (!request.password || !request.password.equals(PASSWORD_1_6)) return { accept: false, status: 401 };
            return { accept: true, session: { tenant: 'acme' } };
          }
          if (request.identity === 'FORBIDDEN') return { accept: false, status: 403 };
          return { accept: true, session: { tenant: 'public' } };
        },
      },
      [Handlers],
    );
  });

  afterAll(async () => {
    await app?.close();
  });

  it('negotiates the subprotocol in the client preference order', async () => {
    const client = await connectedChargePoint(app.wsUrl, 'PREF-1', { protocols: ['ocpp2.0.1', 'ocpp1.6'] });
    expect(client.protocol).toBe('ocpp2.0.1');
    await client.close();
    const other = await connectedChargePoint(app.wsUrl, 'PREF-2', { protocols: ['ocpp1.6', 'ocpp2.0.1'] });
    expect(other.protocol).toBe('ocpp1.6');
    await other.close();
  });

  it('passes identity, protocol, message id, session and node id to handlers', async () => {
    const client = await connectedChargePoint(app.wsUrl, 'CTX-é', { protocols: ['ocpp1.6'] });
    await client.call('BootNotification', { chargePointVendor: 'V', chargePointModel: 'M' });
    const context = seenContexts.at(-1)!;
    expect(context).toMatchObject({ identity: 'CTX-é', protocol: 'ocpp1.6', action: 'BootNotification', nodeId: 'proto-node', session: { tenant: 'public' } });
    expect(context.messageId).toEqual(expect.any(String));
    await client.close();
  });

  it('hands the Basic-auth password to the hook byte for byte (binary 1.6 password)', async () => {
    const client = await connectedChargePoint(app.wsUrl, 'SECURE-1', { password: PASSWORD_1_6 });
    const request = authRequests.find((r) => r.identity === 'SECURE-1')!;
    expect(request.password!.equals(PASSWORD_1_6)).toBe(true);
    expect(request.protocols).toEqual(['ocpp1.6']);
    await client.close();
    const wrong = chargePoint(app.wsUrl, 'SECURE-2', { password: Buffer.from('0123456789abcdef') });
    await expect(withTimeout(wrong.connect(), 5_000, 'rejected connect')).rejects.toThrow(/Unauthorized|401/);
  });

  it('rejects with the status the hook chose', async () => {
    const client = chargePoint(app.wsUrl, 'FORBIDDEN');
    await expect(withTimeout(client.connect(), 5_000, 'rejected connect')).rejects.toThrow(/Forbidden|403/);
  });

  it('turns a thrown OcppRpcError into its CALLERROR, other errors into InternalError without leaking', async () => {
    const client = await connectedChargePoint(app.wsUrl, 'ERR-1');
    await expect(client.call('Authorize', { idTag: 'X' })).rejects.toMatchObject({ rpcErrorCode: 'SecurityError', details: { hint: 'boot first' } });
    const internal = await client.call('StatusNotification', { connectorId: 1, errorCode: 'NoError', status: 'Available' }).catch((e: unknown) => e);
    expect(internal).toMatchObject({ rpcErrorCode: 'InternalError' });
    expect(JSON.stringify(internal)).not.toContain('hunter2');
    expect(String((internal as Error).message)).not.toContain('hunter2');
    await expect(client.call('FirmwareStatusNotification', { status: 'Idle' })).rejects.toMatchObject({ rpcErrorCode: 'NotSupported' });
    await expect(client.call('MadeUpAction', {})).rejects.toMatchObject({ rpcErrorCode: 'NotImplemented' });
    await client.close();
  });

  it('answers schema violations with the version-specific spelling', async () => {
    const c16 = await connectedChargePoint(app.wsUrl, 'STRICT-16', { protocols: ['ocpp1.6'] });
    await expect(c16.call('BootNotification', { chargePointVendor: 'V' })).rejects.toMatchObject({ rpcErrorCode: 'OccurenceConstraintViolation' });
    await expect(c16.call('BootNotification', { chargePointVendor: 42, chargePointModel: 'M' })).rejects.toMatchObject({
      rpcErrorCode: 'TypeConstraintViolation',
    });
    await c16.close();
    const c201 = await connectedChargePoint(app.wsUrl, 'STRICT-201', { protocols: ['ocpp2.0.1'] });
    await expect(c201.call('BootNotification', { reason: 'PowerUp' })).rejects.toMatchObject({ rpcErrorCode: 'OccurrenceConstraintViolation' });
    await expect(c201.call('BootNotification', { reason: 'Sideways', chargingStation: { model: 'M', vendorName: 'V' } })).rejects.toMatchObject({
      rpcErrorCode: 'PropertyConstraintViolation',
    });
    await c201.close();
  });

  it('2.1: validates inbound CALLs with the 2.1 schemas and answers NotSupported for a defined action without handler', async () => {
    const c21 = await connectedChargePoint(app.wsUrl, 'STRICT-21', { protocols: ['ocpp2.1'] });
    expect(c21.protocol).toBe('ocpp2.1');
    await expect(c21.call('BootNotification', {})).rejects.toMatchObject({ rpcErrorCode: 'OccurrenceConstraintViolation' });
    await expect(c21.call('BootNotification', { reason: 'Sideways', chargingStation: { model: 'M', vendorName: 'V' } })).rejects.toMatchObject({
      rpcErrorCode: 'PropertyConstraintViolation',
    });
    expect(await c21.call('BootNotification', { reason: 'PowerUp', chargingStation: { model: 'M', vendorName: 'V' } })).toMatchObject({
      status: 'Accepted',
    });
    const status = { timestamp: new Date().toISOString(), connectorStatus: 'Available', evseId: 1, connectorId: 1 };
    await expect(c21.call('StatusNotification', status)).rejects.toMatchObject({ rpcErrorCode: 'NotSupported' });
    // 2.1-only actions are defined too.
    await expect(c21.call('NotifyPriorityCharging', { transactionId: 'T1', activated: true })).rejects.toMatchObject({
      rpcErrorCode: 'NotSupported',
    });
    await expect(c21.call('MadeUpAction', {})).rejects.toMatchObject({ rpcErrorCode: 'NotImplemented' });
    await c21.close();
  });

  it('2.1: refuses an outbound CALL or SEND that breaks its schema before anything reaches the charger', async () => {
    const c21 = await connectedChargePoint(app.wsUrl, 'OUT-21', { protocols: ['ocpp2.1'] });
    const received: string[] = [];
    c21.handle('Reset', ({ params }) => {
      received.push(`Reset ${JSON.stringify(params)}`);
      return { status: 'Accepted' };
    });
    const bogus = await app.service.sendToClient('OUT-21', 'ocpp2.1', 'Reset', { type: 'Bogus' } as never).catch((e: unknown) => e);
    expect(bogus).toBeInstanceOf(OcppValidationError);
    expect(bogus).toMatchObject({ errorCode: 'PropertyConstraintViolation' });
    const invalidSend = await app.service
      .sendMessage('OUT-21', 'ocpp2.1', 'NotifyPeriodicEventStream', { id: 1 } as never)
      .catch((e: unknown) => e);
    expect(invalidSend).toBeInstanceOf(OcppValidationError);
    // ImmediateAndResume is 2.1's own: validated against the 2.1 schema, not 2.0.1's.
    expect(await app.service.sendToClient('OUT-21', 'ocpp2.1', 'Reset', { type: 'ImmediateAndResume' })).toEqual({ status: 'Accepted' });
    expect(received).toEqual(['Reset {"type":"ImmediateAndResume"}']);
    await c21.close();
  });

  it('1.6: validates the Security Whitepaper messages both ways', async () => {
    const c16 = await connectedChargePoint(app.wsUrl, 'SEC-16', { protocols: ['ocpp1.6'] });
    await expect(c16.call('SecurityEventNotification', { type: 'FirmwareUpdated' })).rejects.toMatchObject({
      rpcErrorCode: 'OccurenceConstraintViolation',
    });
    await expect(c16.call('SignCertificate', { csr: 42 })).rejects.toMatchObject({ rpcErrorCode: 'TypeConstraintViolation' });
    // Valid, defined, but no handler: NotSupported (it was NotImplemented while 1.6 did not know them).
    await expect(c16.call('SecurityEventNotification', { type: 'FirmwareUpdated', timestamp: new Date().toISOString() })).rejects.toMatchObject({
      rpcErrorCode: 'NotSupported',
    });
    let installs = 0;
    c16.handle('InstallCertificate', () => {
      installs++;
      return { status: 'Accepted' };
    });
    c16.handle('CertificateSigned', () => ({ status: 'Maybe' }));
    const badInstall = await app.service
      .sendToClient('SEC-16', 'ocpp1.6', 'InstallCertificate', { certificateType: 'Bogus', certificate: 'PEM' } as never)
      .catch((e: unknown) => e);
    expect(badInstall).toBeInstanceOf(OcppValidationError);
    expect(installs).toBe(0);
    expect(await app.service.sendToClient('SEC-16', 'ocpp1.6', 'InstallCertificate', { certificateType: 'CentralSystemRootCertificate', certificate: 'PEM' })).toEqual({
      status: 'Accepted',
    });
    const badReply = await app.service.sendToClient('SEC-16', 'ocpp1.6', 'CertificateSigned', { certificateChain: 'PEM' }).catch((e: unknown) => e);
    expect(badReply).toBeInstanceOf(OcppValidationError);
    expect(badReply).toMatchObject({ direction: 'response' });
    await c16.close();
  });

  it('refuses an outbound action the protocol does not define (or not CSMS → charger) before anything is sent', async () => {
    const c16 = await connectedChargePoint(app.wsUrl, 'UNKNOWN-16', { protocols: ['ocpp1.6'] });
    const received: string[] = [];
    for (const action of ['Rest', 'BootNotification', 'RequestStartTransaction']) {
      c16.handle(action, () => {
        received.push(action);
        return {};
      });
    }
    const misspelt = await app.service.sendToClient('UNKNOWN-16', 'ocpp1.6', 'Rest' as 'Reset', { type: 'Hard' }).catch((e: unknown) => e);
    expect(misspelt).toBeInstanceOf(UnknownActionError);
    expect((misspelt as Error).message).toContain('"Rest"');
    const wrongWay = await app.service.sendToClient('UNKNOWN-16', 'ocpp1.6', 'BootNotification' as 'Reset', {} as never).catch((e: unknown) => e);
    expect(wrongWay).toBeInstanceOf(UnknownActionError);
    // Version-less, defined in 2.x but not in the charger's 1.6: its session refuses it unsent.
    const otherVersion = await app.service.sendRaw('UNKNOWN-16', undefined, 'RequestStartTransaction', { remoteStartId: 1 }).catch((e: unknown) => e);
    expect(otherVersion).toBeInstanceOf(UnknownActionError);
    expect(await app.service.sendRaw('UNKNOWN-16', 'ocpp1.6', 'Reset', { type: 'Soft' }).catch((e: unknown) => e)).toBeInstanceOf(OcppCallError);
    expect(received).toEqual([]);
    await c16.close();
  });

  it('fails the boot on a handler for an action no configured protocol defines, naming it', async () => {
    @Injectable()
    class Misspelt {
      @OcppHandler('BootNotifcation' as 'BootNotification')
      boot(): never {
        throw new Error('never called');
      }
    }
    const failed = await startModuleApp({ nodeId: 'misspelt-node', pingIntervalMs: 0 }, [Misspelt]).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(UnknownActionError);
    expect((failed as Error).message).toContain('"BootNotifcation"');
  });

  it('sendToClient returns the reply, a CALLERROR as OcppCallError, a silent charger as OcppTimeoutError', async () => {
    const client = await connectedChargePoint(app.wsUrl, 'CMD-1');
    client.handle('Reset', () => ({ status: 'Accepted' }));
    client.handle('UnlockConnector', () => {
      throw createRPCError('NotSupported', 'no locks here', { connectorId: 1 });
    });
    client.handle('ClearCache', () => new Promise(() => undefined));
    expect(await app.service.sendToClient('CMD-1', 'ocpp1.6', 'Reset', { type: 'Hard' })).toEqual({ status: 'Accepted' });
    const callError = await app.service.sendToClient('CMD-1', 'ocpp1.6', 'UnlockConnector', { connectorId: 1 }).catch((e: unknown) => e);
    expect(callError).toBeInstanceOf(OcppCallError);
    expect(callError).toMatchObject({ errorCode: 'NotSupported', errorDescription: 'no locks here', errorDetails: { connectorId: 1 } });
    const timeout = await app.service.sendToClient('CMD-1', 'ClearCache', {}, { timeoutMs: 200 }).catch((e: unknown) => e);
    expect(timeout).toBeInstanceOf(OcppTimeoutError);
    await expect(app.service.sendToClient('NOBODY', 'ocpp1.6', 'Reset', { type: 'Hard' })).rejects.toBeInstanceOf(NotConnectedError);
    expect(await app.service.safeSendToClient('NOBODY', 'ocpp1.6', 'Reset', { type: 'Hard' })).toBeUndefined();
    expect(await app.service.safeSendToClient('CMD-1', 'ocpp1.6', 'Reset', { type: 'Hard' })).toEqual({ status: 'Accepted' });
    await client.close({ force: true }); // its ClearCache handler never settles
  });

  it('a second connection of the same identity replaces the first', async () => {
    const first = await connectedChargePoint(app.wsUrl, 'DUP-1');
    const firstClosed = new Promise<{ code: number }>((resolve) => first.once('close', resolve));
    const second = await connectedChargePoint(app.wsUrl, 'DUP-1');
    const { code } = await withTimeout(firstClosed, 5_000, 'first socket to close');
    expect(code).toBe(1000);
    second.handle('Reset', () => ({ status: 'Accepted' }));
    expect(await app.service.sendToClient('DUP-1', 'ocpp1.6', 'Reset', { type: 'Soft' })).toEqual({ status: 'Accepted' });
    expect(app.service.getLocalChargers().filter((c) => c.identity === 'DUP-1')).toHaveLength(1);
    await second.close();
    await waitFor('disconnect hook of DUP-1', () => connectionEvents.includes('disconnected:DUP-1:1000'));
    // The replaced socket closing is not reported as a disconnect: one connect per socket, one disconnect.
    expect(connectionEvents.filter((e) => e === 'connected:DUP-1')).toHaveLength(2);
    expect(connectionEvents.filter((e) => e.startsWith('disconnected:DUP-1'))).toHaveLength(1);
  });

  it('terminates a half-open socket that stops answering pings', async () => {
    const silent = new WebSocket(`${app.wsUrl}/HALF-OPEN`, 'ocpp1.6', { autoPong: false });
    await withTimeout(new Promise((resolve) => silent.once('open', resolve)), 5_000, 'open');
    const closed = withTimeout(new Promise<number>((resolve) => silent.once('close', resolve)), 10_000, 'half-open socket to be terminated');
    await waitFor('HALF-OPEN registered', () => app.service.getLocalChargers().some((c) => c.identity === 'HALF-OPEN'));
    await closed;
    await waitFor('HALF-OPEN removed', () => !app.service.getLocalChargers().some((c) => c.identity === 'HALF-OPEN'));
    // A charge point that answers pings stays connected over the same period.
    const live = await connectedChargePoint(app.wsUrl, 'PONGS');
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(app.service.getLocalChargers().some((c) => c.identity === 'PONGS')).toBe(true);
    await live.close();
  });
});
