import { Inject, Injectable, Logger } from '@nestjs/common';
import type { OnModuleInit } from '@nestjs/common';
import { DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';
import { HandlerRegistry } from '../cluster/handler-registry.js';
import { SchemaValidator } from '../protocol/validator.js';
import type { OcppHandlerFn } from '../cluster/handler-registry.js';
import type { ChargerInfo, ConnectionListeners } from '../cluster/ocpp-cluster-node.js';
import { OCPP_CLUSTER_RESOLVED_OPTIONS, OCPP_CONNECTION_EVENT_METADATA, OCPP_HANDLER_METADATA } from './ocpp-cluster.constants.js';
import type { ResolvedOcppClusterOptions } from '../ocpp-cluster.options.js';
import type { ConnectionEvent, OcppHandlerMetadata } from './ocpp-handler.decorator.js';

type ConnectedFn = (charger: ChargerInfo, session: unknown) => unknown;
type DisconnectedFn = (charger: ChargerInfo & { code: number; reason: string }, session: unknown) => unknown;

/** Finds `@OcppHandler` and connection-event methods on every provider at module init. */
@Injectable()
export class OcppHandlerExplorer implements OnModuleInit {
  readonly handlers: HandlerRegistry;
  private readonly connected: ConnectedFn[] = [];
  private readonly disconnected: DisconnectedFn[] = [];
  /**
   * Given to the node before module init; filled there with only the events some provider
   * listens to, so that without listeners the node does no hook work per connection.
   */
  readonly listeners: ConnectionListeners = {};
  private readonly logger = new Logger('OcppCluster');

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly reflector: Reflector,
    private readonly validator: SchemaValidator,
    @Inject(OCPP_CLUSTER_RESOLVED_OPTIONS) private readonly options: ResolvedOcppClusterOptions,
  ) {
    this.handlers = new HandlerRegistry((protocol, action) => validator.hasAction(protocol, action));
  }

  onModuleInit(): void {
    for (const wrapper of [...this.discovery.getProviders(), ...this.discovery.getControllers()]) {
      const instance = wrapper.instance as Record<string, unknown> | undefined;
      if (!instance || typeof instance !== 'object' || !wrapper.isDependencyTreeStatic()) continue;
      const prototype = Object.getPrototypeOf(instance);
      for (const methodName of this.scanner.getAllMethodNames(prototype)) {
        const method = prototype[methodName];
        const handler = this.reflector.get<OcppHandlerMetadata | undefined>(OCPP_HANDLER_METADATA, method);
        if (handler) {
          this.handlers.register(handler.action, (method as OcppHandlerFn).bind(instance), handler.protocols, handler.custom);
          this.logger.debug?.(`${handler.action} → ${wrapper.name}.${methodName}`);
        }
        const event = this.reflector.get<ConnectionEvent | undefined>(OCPP_CONNECTION_EVENT_METADATA, method);
        if (event === 'connected') this.connected.push((method as ConnectedFn).bind(instance));
        if (event === 'disconnected') this.disconnected.push((method as DisconnectedFn).bind(instance));
      }
    }
    this.handlers.requireKnownActions(this.options.protocols, (protocol, action) => this.validator.hasCustom(protocol, action));
    if (this.connected.length > 0) {
      this.listeners.onConnected = async (charger, session) => {
        for (const listener of this.connected) await listener(charger, session);
      };
    }
    if (this.disconnected.length > 0) {
      this.listeners.onDisconnected = async (charger, session) => {
        for (const listener of this.disconnected) await listener(charger, session);
      };
    }
  }
}
