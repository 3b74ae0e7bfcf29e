import { Logger, Module } from '@nestjs/common';
import type { Provider } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { TerminusModule } from '@nestjs/terminus';
import type { EventAdapterInterface } from '../cluster/event-adapter.interface.js';
import { InMemoryAdapter } from '../cluster/in-memory-adapter.js';
import { SILENT_LOGGER } from '../cluster/logger.js';
import { createNode, type NodeHost } from '../create-node.js';
import { OcppHandlerExplorer } from './ocpp-handler.explorer.js';
import { OcppClusterHealthIndicator } from './ocpp-cluster.health-indicator.js';
import { OcppPrometheusMetrics } from '../health/ocpp-prometheus-metrics.js';
import {
  OCPP_CLUSTER_ADAPTER,
  OCPP_CLUSTER_NODE,
  OCPP_NODE_HOST,
  OCPP_CLUSTER_RESOLVED_OPTIONS,
  OCPP_METRICS_REGISTRY,
  OCPP_REDIS_POOL,
  OCPP_PRESENCE_STORE,
  OCPP_STREAM_CONSUMER,
  OCPP_BROADCASTER,
} from './ocpp-cluster.constants.js';
import { OcppClusterLifecycle } from './ocpp-cluster.lifecycle.js';
import { OCPP_CLUSTER_OPTIONS, OcppClusterConfigurableModule } from './ocpp-cluster.module-definition.js';
import type { OcppClusterOptions, ResolvedOcppClusterOptions } from '../ocpp-cluster.options.js';
import { OcppClusterService } from './ocpp-cluster.service.js';
import { SchemaValidator } from '../protocol/validator.js';
import { RedisAdapter } from '../redis/redis-adapter.js';
import { resolveOptions } from '../resolve-options.js';

const providers: Provider[] = [
  {
    provide: OCPP_CLUSTER_RESOLVED_OPTIONS,
    inject: [OCPP_CLUSTER_OPTIONS],
    useFactory: (options: OcppClusterOptions) => resolveOptions(options),
  },
  {
    provide: OCPP_CLUSTER_ADAPTER,
    inject: [OCPP_CLUSTER_RESOLVED_OPTIONS],
    useFactory: (options: ResolvedOcppClusterOptions): EventAdapterInterface => {
      if (options.adapter) return options.adapter;
      if (options.redis) {
        return new RedisAdapter({ ...options.redis, logger: options.redis.logger ?? new Logger('OcppClusterRedis') });
      }
      return new InMemoryAdapter();
    },
  },
  {
    provide: SchemaValidator,
    inject: [OCPP_CLUSTER_RESOLVED_OPTIONS],
    useFactory: (options: ResolvedOcppClusterOptions) => new SchemaValidator({ custom: options.validators }),
  },
  {
    provide: OcppPrometheusMetrics,
    inject: [OCPP_CLUSTER_RESOLVED_OPTIONS],
    useFactory: (options: ResolvedOcppClusterOptions) => new OcppPrometheusMetrics(options.metricsRegistry),
  },
  {
    provide: OCPP_METRICS_REGISTRY,
    inject: [OcppPrometheusMetrics],
    useFactory: (metrics: OcppPrometheusMetrics) => metrics.registry,
  },
  {
    provide: OCPP_CLUSTER_NODE,
    inject: [OCPP_NODE_HOST],
    useFactory: (host: NodeHost) => host.node,
  },
  {
    provide: OCPP_NODE_HOST,
    inject: [OCPP_CLUSTER_RESOLVED_OPTIONS, OCPP_CLUSTER_ADAPTER, SchemaValidator, OcppHandlerExplorer, OcppPrometheusMetrics],
    useFactory: (
      options: ResolvedOcppClusterOptions,
      adapter: EventAdapterInterface,
      validator: SchemaValidator,
      explorer: OcppHandlerExplorer,
      metrics: OcppPrometheusMetrics,
    ) => {
      if (options.strictMode) for (const protocol of options.protocols) validator.warmUp(protocol);
      // The composition root: the node, and the gateway that hands it its sockets.
      const host = createNode({
        options,
        adapter,
        validator: options.strictMode ? validator : null,
        handlers: explorer.handlers,
        logger: options.logging ? new Logger('OcppCluster') : SILENT_LOGGER,
        listeners: explorer.listeners,
        metricsSink: metrics,
      });
      metrics.bind(host.node);
      return host;
    },
  },
  {
    provide: OCPP_REDIS_POOL,
    inject: [OCPP_CLUSTER_ADAPTER],
    useFactory: (adapter: EventAdapterInterface) => (adapter instanceof RedisAdapter ? adapter.connectionPool : null),
  },
  {
    provide: OCPP_PRESENCE_STORE,
    inject: [OCPP_CLUSTER_ADAPTER],
    useFactory: (adapter: EventAdapterInterface) => (adapter instanceof RedisAdapter ? adapter.presenceStore : null),
  },
  {
    provide: OCPP_BROADCASTER,
    inject: [OCPP_CLUSTER_ADAPTER],
    useFactory: (adapter: EventAdapterInterface) => (adapter instanceof RedisAdapter ? adapter.broadcasts : null),
  },
  {
    provide: OCPP_STREAM_CONSUMER,
    inject: [OCPP_CLUSTER_ADAPTER],
    useFactory: (adapter: EventAdapterInterface) => () => (adapter instanceof RedisAdapter ? adapter.streamConsumer : null),
  },
  OcppHandlerExplorer,
  OcppClusterLifecycle,
  OcppClusterService,
  OcppClusterHealthIndicator,
];

/**
 * `OcppClusterModule.forRoot(options)` / `.forRootAsync({ useFactory | useClass | useExisting, imports, inject })`,
 * with `isGlobal`. Exports OcppClusterService and OcppClusterHealthIndicator.
 */
@Module({
  imports: [DiscoveryModule, TerminusModule],
  providers,
  exports: [
    OcppClusterService,
    OcppClusterHealthIndicator,
    OcppPrometheusMetrics,
    OCPP_METRICS_REGISTRY,
    OCPP_CLUSTER_NODE,
    OCPP_NODE_HOST,
    OCPP_CLUSTER_ADAPTER,
    OCPP_REDIS_POOL,
    OCPP_PRESENCE_STORE,
    OCPP_STREAM_CONSUMER,
    OCPP_BROADCASTER,
  ],
})
export class OcppClusterModule extends OcppClusterConfigurableModule {}
