// `nestjs-ocpp-cluster/nats`: the NATS JetStream transport (needs the optional peer dependencies
// @nats-io/transport-node, @nats-io/jetstream and @nats-io/kv).
export { NatsTransport, type NatsTransportOptions } from './nats-transport.js';
export { DEFAULT_NATS_PREFIX, NatsNames } from './nats-names.js';
