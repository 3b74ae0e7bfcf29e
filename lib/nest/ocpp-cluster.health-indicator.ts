import { Inject, Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import type { HealthIndicatorResult } from '@nestjs/terminus';
import type { OcppClusterNode } from '../cluster/ocpp-cluster-node.js';
import { settleWithin } from '../cluster/time-bounds.js';
import { OCPP_CLUSTER_NODE, OCPP_CLUSTER_RESOLVED_OPTIONS } from './ocpp-cluster.constants.js';
import type { ResolvedOcppClusterOptions } from '../ocpp-cluster.options.js';

/**
 * Terminus indicators for load balancers and orchestrators. Every path returns a result:
 * a throw would be an HTTP 500, where an operator needs a 503 with the reason.
 */
@Injectable()
export class OcppClusterHealthIndicator {
  constructor(
    private readonly health: HealthIndicatorService,
    @Inject(OCPP_CLUSTER_NODE) private readonly node: OcppClusterNode,
    @Inject(OCPP_CLUSTER_RESOLVED_OPTIONS) private readonly options: ResolvedOcppClusterOptions,
  ) {}

  /**
   * Readiness: every Redis writer completes a real write and the other connections answer
   * within `health.pingTimeoutMs` (a Redis refusing writes is not ready), this node still
   * holds its liveness key, its inbox consumer runs with lag under the thresholds (over
   * `lagDegraded`: degraded, over `lagDown`: down), the gateway accepts, and it is not draining.
   */
  async isReady(key = 'ocpp'): Promise<HealthIndicatorResult> {
    const indicator = this.health.check(key);
    const { pingTimeoutMs, lagDegraded, lagDown } = this.options.health;
    try {
      const probe = await settleWithin(this.node.transport.probe(pingTimeoutMs), pingTimeoutMs * 2);
      if (!probe) throw new Error(`transport probe did not answer within ${pingTimeoutMs * 2} ms`);
      const acceptance = this.node.acceptance();
      const details = {
        nodeId: this.node.nodeId,
        transport: this.node.transport.name,
        connections: this.node.connectionCounts(),
        inFlightRemoteCalls: this.node.inFlightRemoteCalls,
        lag: probe.consumerLag,
        pending: probe.pendingMessages,
        // Keyed by the transport's name (`redis`, `memory`, ...): whose connections these are.
        [this.node.transport.name]: probe.connections,
        livenessHeld: probe.livenessHeld,
        consumerRunning: probe.consumerRunning,
        accepting: acceptance.ok,
      };
      const problems: string[] = [];
      if (this.node.isStopping) problems.push('shutting down');
      else if (this.node.isDraining) problems.push('draining');
      for (const [name, connection] of Object.entries(probe.connections)) {
        if (!connection.ok) problems.push(`${name}: ${connection.error ?? 'down'}`);
      }
      if (!probe.livenessHeld) problems.push('liveness key not held');
      if (!probe.consumerRunning) problems.push('inbox consumer not running');
      if (probe.consumerLag > lagDown) problems.push(`consumer lag ${probe.consumerLag} > ${lagDown}`);
      if (!acceptance.ok && problems.length === 0) problems.push(`not accepting: ${acceptance.reason}`);
      if (problems.length > 0) return indicator.down({ ...details, reason: problems.join('; ') });
      if (probe.consumerLag > lagDegraded) {
        return indicator.degraded({ ...details, reason: `consumer lag ${probe.consumerLag} > ${lagDegraded}` });
      }
      return indicator.up(details);
    } catch (error) {
      return indicator.down({ nodeId: this.node.nodeId, reason: (error as Error)?.message ?? String(error) });
    }
  }

  /**
   * Liveness: this process answers and has not lost its authority (another process holds its
   * node id, or it was taken over and has not rejoined yet). Never touches Redis, so a Redis
   * blip cannot restart every node.
   */
  isLive(key = 'ocpp-process'): HealthIndicatorResult {
    const details = { nodeId: this.node.nodeId, uptimeSeconds: Math.round(process.uptime()) };
    const liveness = this.node.liveness();
    if (!liveness.live) return this.health.check(key).down({ ...details, reason: liveness.reason });
    return this.health.check(key).up(details);
  }
}
