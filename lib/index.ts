// Public API for applications. What transport authors need is on `nestjs-ocpp-cluster/transport`.
export { OcppClusterModule } from './nest/ocpp-cluster.module.js';
export { OCPP_CLUSTER_OPTIONS } from './nest/ocpp-cluster.module-definition.js';
export { OCPP_METRICS_REGISTRY } from './nest/ocpp-cluster.constants.js';
export { OcppClusterService } from './nest/ocpp-cluster.service.js';
export type { TypedBatchOutcome } from './nest/ocpp-cluster.service.js';
export type { OcppClusterOptions, RateLimitOptions, CustomValidators, DrainOptions, HealthOptions } from './ocpp-cluster.options.js';
export { OcppHandler, OcppCustomHandler, OnChargerConnected, OnChargerDisconnected } from './nest/ocpp-handler.decorator.js';
export type { HandlerActionsOf, OcppHandlerMethod, TypedMethodDecorator } from './nest/ocpp-handler.decorator.js';
export type { AuthenticationRequest, AuthenticationResult } from './gateway/ocpp-websocket-gateway.js';
export type { ConnectionRateLimitOptions } from './gateway/connection-rate-limiter.js';
export { CertificateBinding, authenticateClientCertificate, certificateAuthenticator } from './gateway/client-certificate.js';
export type { CertificateBindingOptions, CertificateCheck, CertificateRefusalReason } from './gateway/client-certificate.js';
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
} from './cluster/node-types.js';

// Choosing a transport: the default in memory, Redis, or your own (README, "Writing a transport").
export { InMemoryAdapter } from './cluster/in-memory-adapter.js';
export { defineAdapter } from './cluster/define-adapter.js';
export type { TransportAdapter, TransportCoreOptions, TransportHandler, TransportMessage } from './cluster/transport-adapter.js';
export { RedisAdapter } from './redis/redis-adapter.js';
export type { RedisAdapterOptions, RedisClusterOptions, RedisAdapterMetrics } from './redis/redis-adapter.js';
export { createDriver, RedisDriver } from './redis/redis-driver.js';
export type { DriverOptions, PubSubMode, RedisClient } from './redis/redis-driver.js';
export { ClusterDriver } from './redis/cluster-driver.js';
export type { ClusterDriverOptions, ClusterNodeAddress } from './redis/cluster-driver.js';
export type { DriverFactory } from './redis/redis-connection-pool.js';
export { InvalidKeyPartError } from './redis/redis-keys.js';

export type { OcppProtocol } from './protocol/protocol.js';
export { SUPPORTED_PROTOCOLS, isOcppProtocol } from './protocol/protocol.js';
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
export { WIRE_VERSION } from './cluster/envelope.js';
export { redactSecrets, REDACTED } from './protocol/frame-log.js';
export type { FrameLogOptions, FrameRedactor, OcppFrameRecord, FrameDirection } from './protocol/frame-log.js';
export { MAX_CALL_TIMEOUT_MS } from './protocol/call-timeout.js';
export * from './protocol/errors.js';
