// Public API only.
export { OcppClusterModule } from './nest/ocpp-cluster.module.js';
export { OCPP_CLUSTER_OPTIONS } from './nest/ocpp-cluster.module-definition.js';
export { OcppClusterService } from './nest/ocpp-cluster.service.js';
export type { TypedBatchOutcome } from './nest/ocpp-cluster.service.js';
export type { OcppClusterOptions, RateLimitOptions, CustomValidators, DrainOptions, HealthOptions } from './ocpp-cluster.options.js';
export {
  OCPP_CLUSTER_NODE,
  OCPP_CLUSTER_ADAPTER,
  OCPP_METRICS_REGISTRY,
  OCPP_REDIS_POOL,
  OCPP_PRESENCE_STORE,
  OCPP_STREAM_CONSUMER,
  OCPP_BROADCASTER,
} from './nest/ocpp-cluster.constants.js';
export { OcppHandler, OcppCustomHandler, OnChargerConnected, OnChargerDisconnected } from './nest/ocpp-handler.decorator.js';
export type { HandlerActionsOf, OcppHandlerMethod, TypedMethodDecorator } from './nest/ocpp-handler.decorator.js';
export type { AuthenticationRequest, AuthenticationResult } from './gateway/ocpp-websocket-gateway.js';
export type { ConnectionRateLimitOptions } from './gateway/connection-rate-limiter.js';
export { OcppClusterHealthIndicator } from './nest/ocpp-cluster.health-indicator.js';
export { OcppPrometheusMetrics } from './health/ocpp-prometheus-metrics.js';

export type { OcppContext } from './cluster/handler-registry.js';
export type {
  ChargerInfo,
  SendOptions,
  BroadcastOptions,
  BroadcastSummary,
  BatchOutcome,
  ClusterNodeMetrics,
  DrainReport,
} from './cluster/ocpp-cluster-node.js';
export { OcppClusterNode } from './cluster/ocpp-cluster-node.js';
export type {
  EventAdapterInterface,
  PresenceRecord,
  PresenceClaim,
  AdapterMetrics,
  PresenceSnapshotSource,
  ClusterMessageHandler,
  DeliveryInfo,
  LeaseChange,
  TransportProbe,
} from './cluster/event-adapter.interface.js';
export type { ClusterMessage, CommandEnvelope, ReplyEnvelope, CommandOutcome } from './cluster/envelope.js';
export { BROADCAST_CHANNEL, nodeChannel } from './cluster/envelope.js';
export { defineAdapter } from './cluster/define-adapter.js';
export { InMemoryAdapter, InMemoryBus } from './cluster/in-memory-adapter.js';
export { RedisAdapter } from './redis/redis-adapter.js';
export type { RedisAdapterOptions, RedisClusterOptions } from './redis/redis-adapter.js';
export { createDriver, RedisDriver } from './redis/redis-driver.js';
export type { DriverOptions, PubSubMode, RedisClient } from './redis/redis-driver.js';
export { ClusterDriver } from './redis/cluster-driver.js';
export type { ClusterDriverOptions, ClusterNodeAddress } from './redis/cluster-driver.js';
export { RedisConnectionPool } from './redis/redis-connection-pool.js';
export type { DriverFactory } from './redis/redis-connection-pool.js';
export { PresenceStore } from './redis/presence-store.js';
export { StreamConsumer } from './redis/stream-consumer.js';
export { Broadcaster } from './redis/broadcaster.js';
export { InvalidKeyPartError } from './redis/redis-keys.js';

export type { OcppProtocol } from './protocol/protocol.js';
export { SUPPORTED_PROTOCOLS, isOcppProtocol } from './protocol/protocol.js';
export { SchemaValidator } from './protocol/validator.js';
export { ACTION_DIRECTIONS, directionOf } from './protocol/action-directions.js';
export type { ActionDirection, ActionDirections } from './protocol/action-directions.js';
export type {
  OcppMessages,
  ActionsOf,
  CommonActionsOf,
  InboundActionsOf,
  OcppRequest,
  OcppResponse,
  CommonRequest,
  HandlerReply,
} from './protocol/typed-actions.js';
export type { ValidationProblem, PayloadValidatorFn } from './protocol/validator.js';
export { MAX_CALL_TIMEOUT_MS } from './protocol/call-timeout.js';
export * from './protocol/errors.js';
