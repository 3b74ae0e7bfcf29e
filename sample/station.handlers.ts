import { randomInt } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { OcppHandler } from '../lib/index.js';
import type { HandlerReply, OcppContext, OcppProtocol, OcppRequest, OcppResponse } from '../lib/index.js';

const HEARTBEAT_INTERVAL_SECONDS = 300;
const now = (): string => new Date().toISOString();

type OcppTwo = 'ocpp2.0.1' | 'ocpp2.1';

/**
 * What a minimal CSMS answers. Each method's types come from the OCA schemas: the compiler checks
 * that every reply fits every protocol the handler serves.
 */
@Injectable()
export class StationHandlers {
  @OcppHandler('BootNotification')
  bootNotification(_payload: OcppRequest<OcppProtocol, 'BootNotification'>, _context: OcppContext): HandlerReply<OcppProtocol, 'BootNotification'> {
    return { status: 'Accepted', currentTime: now(), interval: HEARTBEAT_INTERVAL_SECONDS };
  }

  @OcppHandler('Heartbeat')
  heartbeat(): HandlerReply<OcppProtocol, 'Heartbeat'> {
    return { currentTime: now() };
  }

  @OcppHandler('StatusNotification')
  statusNotification(): HandlerReply<OcppProtocol, 'StatusNotification'> {
    return {};
  }

  @OcppHandler('Authorize', { protocols: ['ocpp1.6'] })
  authorize16(): OcppResponse<'ocpp1.6', 'Authorize'> {
    return { idTagInfo: { status: 'Accepted' } };
  }

  @OcppHandler('Authorize', { protocols: ['ocpp2.0.1', 'ocpp2.1'] })
  authorize2(): HandlerReply<OcppTwo, 'Authorize'> {
    return { idTokenInfo: { status: 'Accepted' } };
  }

  @OcppHandler('StartTransaction', { protocols: ['ocpp1.6'] })
  startTransaction(): OcppResponse<'ocpp1.6', 'StartTransaction'> {
    // Random, not a per-process counter: two sample nodes must not hand out the same id.
    return { transactionId: randomInt(1, 2 ** 31 - 1), idTagInfo: { status: 'Accepted' } };
  }

  @OcppHandler('StopTransaction', { protocols: ['ocpp1.6'] })
  stopTransaction(): OcppResponse<'ocpp1.6', 'StopTransaction'> {
    return { idTagInfo: { status: 'Accepted' } };
  }

  @OcppHandler('TransactionEvent', { protocols: ['ocpp2.0.1', 'ocpp2.1'] })
  transactionEvent(payload: OcppRequest<OcppTwo, 'TransactionEvent'>): HandlerReply<OcppTwo, 'TransactionEvent'> {
    return payload.idToken ? { idTokenInfo: { status: 'Accepted' } } : {};
  }

  @OcppHandler('MeterValues')
  meterValues(): HandlerReply<OcppProtocol, 'MeterValues'> {
    return {};
  }

  @OcppHandler('DataTransfer')
  dataTransfer(payload: OcppRequest<OcppProtocol, 'DataTransfer'>): HandlerReply<OcppProtocol, 'DataTransfer'> {
    return payload.data === undefined ? { status: 'Accepted' } : { status: 'Accepted', data: payload.data as string };
  }
}
