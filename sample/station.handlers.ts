import { randomInt } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { OcppHandler } from '../lib/index.js';
import type { OcppContext } from '../lib/index.js';

type Payload = Record<string, any>;

const HEARTBEAT_INTERVAL_SECONDS = 300;
const now = (): string => new Date().toISOString();

/** What a minimal CSMS answers; every reply is valid against the OCA schemas. */
@Injectable()
export class StationHandlers {
  @OcppHandler('BootNotification')
  bootNotification(_payload: Payload, _context: OcppContext): Payload {
    return { status: 'Accepted', currentTime: now(), interval: HEARTBEAT_INTERVAL_SECONDS };
  }

  @OcppHandler('Heartbeat')
  heartbeat(): Payload {
    return { currentTime: now() };
  }

  @OcppHandler('StatusNotification')
  statusNotification(): Payload {
    return {};
  }

  @OcppHandler('Authorize', { protocols: ['ocpp1.6'] })
  authorize16(): Payload {
    return { idTagInfo: { status: 'Accepted' } };
  }

  @OcppHandler('Authorize', { protocols: ['ocpp2.0.1', 'ocpp2.1'] })
  authorize2(): Payload {
    return { idTokenInfo: { status: 'Accepted' } };
  }

  @OcppHandler('StartTransaction', { protocols: ['ocpp1.6'] })
  startTransaction(): Payload {
    // Random, not a per-process counter: two sample nodes must not hand out the same id.
    return { transactionId: randomInt(1, 2 ** 31 - 1), idTagInfo: { status: 'Accepted' } };
  }

  @OcppHandler('StopTransaction', { protocols: ['ocpp1.6'] })
  stopTransaction(): Payload {
    return { idTagInfo: { status: 'Accepted' } };
  }

  @OcppHandler('TransactionEvent', { protocols: ['ocpp2.0.1', 'ocpp2.1'] })
  transactionEvent(payload: Payload): Payload {
    return payload.idToken ? { idTokenInfo: { status: 'Accepted' } } : {};
  }

  @OcppHandler('MeterValues')
  meterValues(): Payload {
    return {};
  }

  @OcppHandler('DataTransfer')
  dataTransfer(payload: Payload): Payload {
    return payload.data === undefined ? { status: 'Accepted' } : { status: 'Accepted', data: payload.data };
  }
}
