import { Inject, Injectable, Logger } from '@nestjs/common';
import type { BeforeApplicationShutdown, OnApplicationBootstrap } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { Server as HttpServer } from 'node:http';
import type { NodeHost } from '../create-node.js';
import { OCPP_NODE_HOST } from './ocpp-cluster.constants.js';

/**
 * Starts the node once every handler is known, and stops it before Nest closes the HTTP
 * server (closing sockets later left `app.close()` hanging: TOOLCHAIN.md).
 */
@Injectable()
export class OcppClusterLifecycle implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('OcppCluster');

  constructor(
    @Inject(OCPP_NODE_HOST) private readonly host: NodeHost,
    private readonly httpAdapterHost: HttpAdapterHost,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const httpServer = this.httpAdapterHost.httpAdapter?.getHttpServer() as HttpServer | undefined;
    const ownPort = await this.host.start(httpServer);
    const nodeId = this.host.node.nodeId;
    this.logger.log(
      ownPort === undefined
        ? `node ${nodeId} accepting charge points on the application's HTTP server`
        : `node ${nodeId} accepting charge points on port ${ownPort}`,
    );
  }

  /**
   * On a signal (SIGTERM with `enableShutdownHooks`) the node drains first, handing its charge
   * points to the rest of the cluster; a plain `app.close()` closes their sockets with 1001.
   */
  async beforeApplicationShutdown(signal?: string): Promise<void> {
    if (signal) await this.host.node.drain();
    await this.host.stop();
  }
}
