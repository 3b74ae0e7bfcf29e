import { Controller, Get } from '@nestjs/common';
import { HealthCheck, HealthCheckService } from '@nestjs/terminus';
import { OcppClusterHealthIndicator } from '../lib/index.js';

@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly ocpp: OcppClusterHealthIndicator,
  ) {}

  /** Readiness: point the load balancer here. */
  @Get()
  @HealthCheck()
  ready() {
    return this.health.check([() => this.ocpp.isReady()]);
  }

  /** Liveness: never touches Redis. */
  @Get('live')
  @HealthCheck()
  live() {
    return this.health.check([() => this.ocpp.isLive()]);
  }
}
