import { Inject, Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import type { HealthIndicatorResult } from '@nestjs/terminus';
import type { OcppClusterNode } from '../cluster/ocpp-cluster-node.js';
import { OCPP_CLUSTER_NODE } from '../ocpp-cluster.constants.js';

/**
 * Terminus indicator. Reports `down` (never throws: a throw is an HTTP 500, not a 503).
 */
@Injectable()
export class OcppClusterHealthIndicator {
  constructor(
    private readonly health: HealthIndicatorService,
    @Inject(OCPP_CLUSTER_NODE) private readonly node: OcppClusterNode,
  ) {}

  /** Ready to take charge points: transport healthy and not stopping. */
  async isReady(key = 'ocpp'): Promise<HealthIndicatorResult> {
    const indicator = this.health.check(key);
    try {
      const metrics = await this.node.metrics();
      const details = {
        nodeId: this.node.nodeId,
        transport: this.node.transport.name,
        connections: metrics.localConnections,
        inFlightRemoteCalls: metrics.inFlightRemoteCalls,
        pendingMessages: metrics.redisConsumerLag.pendingMessages,
        lag: metrics.redisConsumerLag.lag,
      };
      if (this.node.isStopping) return indicator.down({ ...details, reason: 'shutting down' });
      if (!this.node.transport.isHealthy()) return indicator.down({ ...details, reason: 'cluster transport unavailable' });
      return indicator.up(details);
    } catch (error) {
      return indicator.down({ nodeId: this.node.nodeId, reason: (error as Error)?.message ?? String(error) });
    }
  }

  /** This process answers; never touches Redis, so a Redis blip cannot restart every node. */
  isLive(key = 'ocpp-process'): HealthIndicatorResult {
    return this.health.check(key).up({ nodeId: this.node.nodeId, uptimeSeconds: Math.round(process.uptime()) });
  }
}
