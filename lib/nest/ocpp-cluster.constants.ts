/** Injection tokens of the module's internal parts (exported for tests and advanced wiring). */
export const OCPP_CLUSTER_RESOLVED_OPTIONS = Symbol('OCPP_CLUSTER_RESOLVED_OPTIONS');
export const OCPP_CLUSTER_ADAPTER = Symbol('OCPP_CLUSTER_ADAPTER');
export const OCPP_CLUSTER_NODE = Symbol('OCPP_CLUSTER_NODE');
/** The node and its WebSocket gateway, as the module built them (`NodeHost` of lib/create-node.ts). */
export const OCPP_NODE_HOST = Symbol('OCPP_NODE_HOST');
/** The prom-client Registry holding the module's metrics (inject it to add yours or expose it). */
export const OCPP_METRICS_REGISTRY = Symbol('OCPP_METRICS_REGISTRY');

export const OCPP_HANDLER_METADATA = 'ocpp-cluster:handler';
export const OCPP_CONNECTION_EVENT_METADATA = 'ocpp-cluster:connection-event';

/** The Redis parts, each one job (null when the transport is not the built-in RedisAdapter). */
export const OCPP_REDIS_POOL = Symbol('OCPP_REDIS_POOL');
export const OCPP_PRESENCE_STORE = Symbol('OCPP_PRESENCE_STORE');
/** A function returning this node's inbox consumer (it exists once the node has joined). */
export const OCPP_STREAM_CONSUMER = Symbol('OCPP_STREAM_CONSUMER');
export const OCPP_BROADCASTER = Symbol('OCPP_BROADCASTER');
