// Compile-time tests of the typed API, run by `npm run typecheck` (never executed): each
// `@ts-expect-error` line must fail to compile, every other line must compile.
import { Injectable } from '@nestjs/common';
import { OcppHandler } from '../../lib/index.js';
import type { HandlerReply, OcppClusterService, OcppContext, OcppRequest, OcppResponse } from '../../lib/index.js';

declare const all: OcppClusterService;
declare const only16: OcppClusterService<'ocpp1.6'>;
declare const twoX: OcppClusterService<'ocpp2.0.1' | 'ocpp2.1'>;

export async function calls(): Promise<void> {
  // --- must compile
  const started: OcppResponse<'ocpp2.0.1', 'RequestStartTransaction'> = await all.sendToClient('CP', 'ocpp2.0.1', 'RequestStartTransaction', {
    idToken: { idToken: 'TAG', type: 'ISO14443' },
    remoteStartId: 1,
  });
  const status: 'Accepted' | 'Rejected' = started.status;
  const reset16 = await only16.sendToClient('CP', 'Reset', { type: 'Hard' });
  const resetStatus: 'Accepted' | 'Rejected' = reset16.status;
  await only16.sendToClient('CP', 'ocpp1.6', 'SignedUpdateFirmware', {
    requestId: 1,
    firmware: { location: 'https://x', retrieveDateTime: '2025-01-01T00:00:00Z', signingCertificate: 'PEM', signature: 'SIG' },
  });
  await twoX.sendToClient('CP', 'RequestStopTransaction', { transactionId: 'T1' });
  await all.sendToClient('CP', 'DataTransfer', { vendorId: 'acme', data: 'x' });
  await all.sendToClient('CP', 'ocpp2.1', 'Reset', { type: 'ImmediateAndResume' });
  await all.sendMessage('CP', 'ocpp2.1', 'NotifyPeriodicEventStream', { id: 1, pending: 0, basetime: '2025-01-01T00:00:00Z', data: [{ t: 0, v: '1' }] });
  await all.broadcast('ocpp1.6', 'ClearCache', {});
  await all.broadcast('DataTransfer', { vendorId: 'acme' });
  const outcomes = await twoX.broadcastBatch(['A', 'B'], 'GetVariables', { getVariableData: [{ component: { name: 'C' }, variable: { name: 'V' } }] });
  for (const outcome of outcomes) if (outcome.status === 'fulfilled') void outcome.result.getVariableResult;
  await all.sendRaw('CP', 'ocpp1.6', 'VendorThing', { anything: 1 });
  void [status, resetStatus];

  // --- must not compile
  // @ts-expect-error misspelt action
  await all.sendToClient('CP1', 'ocpp1.6', 'Rest', { type: 'Hard' });
  // @ts-expect-error misspelt field (the loose untyped call of old)
  await all.sendToClient('CP1', 'ocpp1.6', 'Reset', { tpe: 'Hard' });
  // @ts-expect-error action not in that version (2.0.1 has no RemoteStartTransaction)
  await all.sendToClient('CP', 'ocpp2.0.1', 'RemoteStartTransaction', { idTag: 'X' });
  // @ts-expect-error wrong direction: the charger sends BootNotification
  await all.sendToClient('CP', 'ocpp1.6', 'BootNotification', { chargePointVendor: 'V', chargePointModel: 'M' });
  // @ts-expect-error missing required field
  await all.sendToClient('CP', 'ocpp2.0.1', 'RequestStartTransaction', { remoteStartId: 1 });
  // @ts-expect-error a value outside the enum
  await all.sendToClient('CP', 'ocpp2.1', 'Reset', { type: 'Bogus' });
  // @ts-expect-error 1.6 values in a 2.0.1 call
  await all.sendToClient('CP', 'ocpp2.0.1', 'Reset', { type: 'Hard' });
  // @ts-expect-error a protocol this service is not configured for
  await only16.sendToClient('CP', 'ocpp2.0.1', 'Reset', { type: 'Immediate' });
  // @ts-expect-error version-less: 2.x actions are not offered to a 1.6-only app
  await only16.sendToClient('CP', 'RequestStartTransaction', { idToken: { idToken: 'T', type: 'Local' }, remoteStartId: 1 });
  // @ts-expect-error version-less: GetConfiguration exists in 1.6 only, not in every configured version
  await all.sendToClient('CP', 'GetConfiguration', {});
  // @ts-expect-error version-less Reset: no payload fits 1.6 and 2.x at once
  await all.sendToClient('CP', 'Reset', { type: 'Hard' });
  // @ts-expect-error the reply is typed: 1.6 Reset has no statusInfo
  void (await only16.sendToClient('CP', 'Reset', { type: 'Hard' })).statusInfo;
  // @ts-expect-error SEND only in 2.1, and only SEND actions
  await all.sendMessage('CP', 'ocpp2.1', 'Reset', { type: 'Immediate' });
  // @ts-expect-error 1.6 has no SEND
  await all.sendMessage('CP', 'ocpp1.6', 'NotifyPeriodicEventStream', { id: 1 });
  // @ts-expect-error broadcast checks direction too
  await all.broadcast('ocpp2.0.1', 'Heartbeat', {});
  // @ts-expect-error broadcastBatch checks the payload
  await twoX.broadcastBatch(['A'], 'RequestStopTransaction', {});
  // @ts-expect-error no loose overload: any string is not an action
  await all.sendToClient('CP', 'ocpp1.6', 'Anything' as string, {});
}

@Injectable()
export class MustCompile {
  @OcppHandler('BootNotification')
  boot(payload: OcppRequest<'ocpp1.6' | 'ocpp2.0.1' | 'ocpp2.1', 'BootNotification'>, context: OcppContext): HandlerReply<'ocpp1.6' | 'ocpp2.0.1' | 'ocpp2.1', 'BootNotification'> {
    void [payload, context.protocol];
    return { status: 'Accepted', currentTime: '2025-01-01T00:00:00Z', interval: 300 };
  }

  @OcppHandler('Authorize', { protocols: ['ocpp1.6'] })
  async authorize16(payload: OcppRequest<'ocpp1.6', 'Authorize'>, context: OcppContext<'ocpp1.6'>): Promise<OcppResponse<'ocpp1.6', 'Authorize'>> {
    const protocol: 'ocpp1.6' = context.protocol;
    void protocol;
    return { idTagInfo: { status: payload.idTag ? 'Accepted' : 'Invalid' } };
  }

  @OcppHandler('SecurityEventNotification', { protocols: ['ocpp1.6', 'ocpp2.0.1'] })
  securityEvent(): HandlerReply<'ocpp1.6' | 'ocpp2.0.1', 'SecurityEventNotification'> {
    return {};
  }

  @OcppHandler('NotifyPeriodicEventStream', { protocols: ['ocpp2.1'] })
  stream(payload: OcppRequest<'ocpp2.1', 'NotifyPeriodicEventStream'>): void {
    void payload.data[0]?.v;
  }
}

@Injectable()
export class MustNotCompile {
  // @ts-expect-error misspelt action
  @OcppHandler('BootNotifcation')
  boot(): HandlerReply<'ocpp1.6', 'BootNotification'> {
    return { status: 'Accepted', currentTime: '', interval: 1 };
  }

  // @ts-expect-error wrong direction: the CSMS sends Reset, a charge point never does
  @OcppHandler('Reset', { protocols: ['ocpp1.6'] })
  reset(): OcppResponse<'ocpp1.6', 'Reset'> {
    return { status: 'Accepted' };
  }

  // @ts-expect-error action not in that version
  @OcppHandler('StartTransaction', { protocols: ['ocpp2.0.1'] })
  start(): object {
    return {};
  }

  // @ts-expect-error version-less handler of a 1.6-only action (it would serve 2.x too)
  @OcppHandler('StopTransaction')
  stop(): object {
    return {};
  }

  // @ts-expect-error a 2.0.1 handler returning the 1.6 reply shape
  @OcppHandler('Authorize', { protocols: ['ocpp2.0.1'] })
  authorize201(): OcppResponse<'ocpp1.6', 'Authorize'> {
    return { idTagInfo: { status: 'Accepted' } };
  }

  // @ts-expect-error one handler for 1.6 and 2.0.1 Authorize: their replies differ, no single reply fits both
  @OcppHandler('Authorize', { protocols: ['ocpp1.6', 'ocpp2.0.1'] })
  authorizeBoth(): OcppResponse<'ocpp2.0.1', 'Authorize'> {
    return { idTokenInfo: { status: 'Accepted' } };
  }

  // @ts-expect-error missing field in the reply
  @OcppHandler('Heartbeat', { protocols: ['ocpp2.1'] })
  heartbeat(): Omit<OcppResponse<'ocpp2.1', 'Heartbeat'>, 'currentTime'> {
    return {};
  }

  // @ts-expect-error wrong reply type (a widened status string is not the enum)
  @OcppHandler('BootNotification', { protocols: ['ocpp2.1'] })
  boot21() {
    return { status: 'Accepted' as string, currentTime: '', interval: 1 };
  }
}
