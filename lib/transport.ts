// `nestjs-ocpp-cluster/transport`: what a transport author (or a test reaching below the module) needs.
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
  PresenceRestore,
  NodeLossPrimitives,
  LostNodeClaim,
  LostNodeFinish,
  PendingEntry,
} from './cluster/event-adapter.interface.js';
export type { Address, NodeAddress, AllNodesAddress, Lane, Subscription } from './cluster/address.js';
export { ALL_NODES, inboxOf, repliesOf, isAllNodes } from './cluster/address.js';
export type {
  ClusterMessage,
  CommandEnvelope,
  ReplyEnvelope,
  BroadcastEnvelope,
  EvictEnvelope,
  NodeLeftEnvelope,
  CommandOutcome,
} from './cluster/envelope.js';
export { BROADCAST_CHANNEL, nodeChannel } from './cluster/envelope.js';
export { defineAdapter } from './cluster/define-adapter.js';
export type { TransportAdapter, TransportCoreOptions, TransportHandler, TransportMessage } from './cluster/transport-adapter.js';
export { MEMBERSHIP_CHANNEL } from './cluster/gossip-membership.js';
export { InMemoryAdapter, InMemoryBus } from './cluster/in-memory-adapter.js';
export { OcppClusterNode } from './cluster/ocpp-cluster-node.js';
export { createNode } from './create-node.js';
export { resolveOptions } from './resolve-options.js';
export { HandlerRegistry } from './cluster/handler-registry.js';
export type { NodeHost, CreateNodeParts } from './create-node.js';
export type { NodeOptions } from './cluster/node-options.js';
export type { ConnectionInfo, UpgradeRequest, UpgradeVerdict } from './protocol/handshake.js';
export {
  OCPP_CLUSTER_NODE,
  OCPP_NODE_HOST,
  OCPP_CLUSTER_ADAPTER,
  OCPP_METRICS_REGISTRY,
  OCPP_REDIS_POOL,
  OCPP_PRESENCE_STORE,
  OCPP_STREAM_CONSUMER,
  OCPP_BROADCASTER,
} from './nest/ocpp-cluster.constants.js';
export { RedisConnectionPool } from './redis/redis-connection-pool.js';
export { PresenceStore } from './redis/presence-store.js';
export { StreamConsumer } from './redis/stream-consumer.js';
export { Broadcaster } from './redis/broadcaster.js';
