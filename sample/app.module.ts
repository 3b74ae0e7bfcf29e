import { Module } from '@nestjs/common';
import type { DynamicModule } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { OcppClusterModule } from '../lib/index.js';
import type { OcppClusterOptions } from '../lib/index.js';
import { ChargersController } from './chargers.controller.js';
import { ConnectionLog } from './connection-log.js';
import { CONTROL_API, ControlTokenGuard } from './control-token.guard.js';
import type { ControlApiOptions } from './control-token.guard.js';
import { HealthController } from './health.controller.js';
import { MetricsController } from './metrics.controller.js';
import { StationHandlers } from './station.handlers.js';

/** The sample CSMS. `forOptions` lets tests start it with their own options. */
@Module({})
export class AppModule {
  static forOptions(options: OcppClusterOptions, control: ControlApiOptions = {}): DynamicModule {
    return {
      module: AppModule,
      imports: [
        TerminusModule.forRoot(),
        OcppClusterModule.forRootAsync({ useFactory: () => options }),
      ],
      controllers: [ChargersController, HealthController, MetricsController],
      providers: [StationHandlers, ConnectionLog, ControlTokenGuard, { provide: CONTROL_API, useValue: control }],
    };
  }
}
