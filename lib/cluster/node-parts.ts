import { AnsweredCalls } from '../protocol/answered-calls.js';
import type { SchemaValidator } from '../protocol/validator.js';
import type { NodeOptions } from './node-options.js';
import { Admission } from './admission.js';
import { Broadcasts } from './broadcasts.js';
import { CallChecks } from './call-checks.js';
import { CallRouter } from './call-router.js';
import { CommandInbox } from './command-inbox.js';
import { Connections } from './connections.js';
import { DrainController } from './drain.js';
import type { EventAdapterInterface } from './event-adapter.interface.js';
import type { HandlerRegistry } from './handler-registry.js';
import { InboundHandlers } from './inbound-handlers.js';
import { LeaseGuard } from './lease-guard.js';
import { LocalRegistry } from './local-registry.js';
import type { ClusterLogger } from './logger.js';
import type { ClusterMetricsSink } from './metrics-sink.js';
import { NodeLoss } from './node-loss.js';
import { NodeMetrics } from './node-metrics.js';
import type { ConnectionListeners } from './node-types.js';
import { OutboundCalls } from './outbound-calls.js';
import { OwnerCache } from './owner-cache.js';
import { ParkedCalls } from './parked-calls.js';
import { ParkedDelivery } from './parked-delivery.js';
import { PresenceView } from './presence-view.js';
import { RemoteCalls } from './remote-calls.js';
import { stampingWireVersion } from './wire-version.js';

/** What the parts need from the node that holds them. */
export interface NodeContext {
  options: NodeOptions;
  adapter: EventAdapterInterface;
  validator: SchemaValidator | null;
  handlers: HandlerRegistry;
  logger: ClusterLogger;
  listeners: ConnectionListeners;
  metricsSink: ClusterMetricsSink;
  isStopping: () => boolean;
  hasLeft: () => boolean;
  leaveCluster: () => Promise<void>;
}

export type NodeParts = ReturnType<typeof composeNodeParts>;

/** Builds the node's parts and ties them together: the whole wiring diagram of a node in one place. */
export function composeNodeParts(context: NodeContext) {
  const { options, validator, handlers, logger, listeners, metricsSink, isStopping } = context;
  const nodeId = options.nodeId;
  const wireVersion = options.wireVersion;
  // Every envelope the parts publish carries the node's wire version.
  const adapter = stampingWireVersion(context.adapter, wireVersion);
  const registry = new LocalRegistry();
  const remoteCalls = new RemoteCalls();
  const owners = new OwnerCache(options.ownerCacheMs);
  // OCPP 2.1 retries (same message id and payload) get their first answer again, also after a reconnect here.
  const answeredCalls = new AnsweredCalls(options.retryCache);
  const lease = new LeaseGuard(nodeId, adapter);
  const metrics = new NodeMetrics(metricsSink, handlers);
  const checks = new CallChecks(options, validator);
  const activeCommands = (): number => inbox.activeCommands;
  const drain = new DrainController({ nodeId, adapter, registry, options, logger, activeCommands, leaveCluster: context.leaveCluster });
  const isServing = (identity: string): boolean => router.servingConnection(identity) !== undefined;
  const parkedDelivery = new ParkedDelivery({ nodeId, adapter, isServing, logger });
  const parkAgain = parkedDelivery.parkAgain.bind(parkedDelivery);
  const router = new CallRouter({ nodeId, adapter, registry, drain, owners, checks, metricsSink, parkAgain });
  const deliverHere = (identity: string): void => parkedDelivery.deliver(identity);
  const parkedCalls = new ParkedCalls({ nodeId, adapter, remoteCalls, logger, deliverHere });
  const calls = new OutboundCalls({ nodeId, adapter, router, remoteCalls, checks, metrics, isStopping, parkedCalls, wireVersion });
  const concurrency = options.broadcastConcurrency;
  const broadcasts = new Broadcasts({ nodeId, adapter, registry, lease, checks, metricsSink, concurrency, isStopping, wireVersion });
  const refuseUpgradesWhileTransportDown = options.refuseUpgradesWhileTransportDown;
  const isDraining = () => drain.isDraining;
  const maxEventLoopDelayMs = options.maxEventLoopDelayMs;
  const admission = new Admission({ adapter, lease, logger, refuseUpgradesWhileTransportDown, isStopping, isDraining, maxEventLoopDelayMs });
  const inbound = new InboundHandlers(nodeId, handlers, metrics, logger);
  const connections = new Connections({
    ...{ nodeId, adapter, registry, options, validator, answeredCalls },
    ...{ inbound, listeners, admission, lease, drain, metrics, logger, onServing: deliverHere },
  });
  const onEvict = connections.onEvict.bind(connections);
  // Node loss works on whatever transport offers the primitives (a poke when a node says it left).
  const nodeLoss = new NodeLoss({ nodeId, adapter, logger, wireVersion });
  const onNodeLeft = () => nodeLoss.poke();
  const inbox = new CommandInbox({
    ...{ nodeId, adapter, lease, router, owners, remoteCalls },
    ...{ broadcasts, metrics, logger, onEvict, onNodeLeft, hasLeft: context.hasLeft, wireVersion, onDeliverParked: deliverHere },
  });
  const presence = new PresenceView(nodeId, adapter, registry, options.maxIdentityLength);
  return { registry, remoteCalls, parkedCalls, owners, answeredCalls, lease, metrics, drain, calls, broadcasts, admission, connections, inbox, presence, nodeLoss };
}
