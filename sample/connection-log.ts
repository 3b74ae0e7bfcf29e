import { Injectable, Logger } from '@nestjs/common';
import { OnChargerConnected, OnChargerDisconnected } from '../lib/index.js';
import type { ChargerInfo } from '../lib/index.js';

/** Logs every charge point that connects or disconnects on this node. */
@Injectable()
export class ConnectionLog {
  private readonly logger = new Logger('Stations');

  @OnChargerConnected()
  connected(charger: ChargerInfo): void {
    this.logger.log(`${charger.identity} connected (${charger.protocol})`);
  }

  @OnChargerDisconnected()
  disconnected(charger: ChargerInfo & { code: number }): void {
    this.logger.log(`${charger.identity} disconnected (${charger.code})`);
  }
}
