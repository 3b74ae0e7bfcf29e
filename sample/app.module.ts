import { Module } from '@nestjs/common';
import type { DynamicModule } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { OcppClusterModule } from '../lib/index.js';
import type { OcppClusterOptions } from '../lib/index.js';
import { ChargersController } from './chargers.controller.js';
import { BOARD_STORE, ClusterBoard, MemoryBoardStore } from './cluster-board.js';
import type { BoardStore } from './cluster-board.js';
import { ClusterPageController } from './cluster-page.controller.js';
import { ConnectionLog } from './connection-log.js';
import { CONTROL_API, ControlTokenGuard } from './control-token.guard.js';
import type { ControlApiOptions } from './control-token.guard.js';
import { HealthController } from './health.controller.js';
import { MetricsController } from './metrics.controller.js';
import { StationHandlers } from './station.handlers.js';

/** The sample CSMS. `forOptions` lets tests start it with their own options. */
@Module({})
export class AppModule {
  static forOptions(options: OcppClusterOptions, control: ControlApiOptions = {}, board: BoardStore = new MemoryBoardStore()): DynamicModule {
    return {
      module: AppModule,
      imports: [
        TerminusModule.forRoot(),
        OcppClusterModule.forRootAsync({ useFactory: () => options }),
      ],
      controllers: [ChargersController, HealthController, MetricsController, ClusterPageController],
      providers: [
        ...[StationHandlers, ConnectionLog, ControlTokenGuard, ClusterBoard],
        { provide: CONTROL_API, useValue: control },
        { provide: BOARD_STORE, useValue: board },
      ],
    };
  }
}
