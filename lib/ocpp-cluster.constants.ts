/** Injection tokens of the module's internal parts (exported for tests and advanced wiring). */
export const OCPP_CLUSTER_RESOLVED_OPTIONS = Symbol('OCPP_CLUSTER_RESOLVED_OPTIONS');
export const OCPP_CLUSTER_ADAPTER = Symbol('OCPP_CLUSTER_ADAPTER');
export const OCPP_CLUSTER_NODE = Symbol('OCPP_CLUSTER_NODE');
/** The prom-client Registry holding the module's metrics (inject it to add yours or expose it). */
export const OCPP_METRICS_REGISTRY = Symbol('OCPP_METRICS_REGISTRY');

export const OCPP_HANDLER_METADATA = 'ocpp-cluster:handler';
export const OCPP_CONNECTION_EVENT_METADATA = 'ocpp-cluster:connection-event';
