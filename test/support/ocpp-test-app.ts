import 'reflect-metadata';
import { Test } from '@nestjs/testing';
import type { INestApplication, Provider, Type } from '@nestjs/common';
import type { AddressInfo } from 'node:net';
import { OcppClusterModule, OcppClusterService } from '../../lib/index.js';
import type { OcppClusterOptions } from '../../lib/index.js';
import { AppModule } from '../../sample/app.module.js';

export interface TestApp {
  app: INestApplication;
  service: OcppClusterService;
  port: number;
  /** ws://127.0.0.1:<port><path> */
  wsUrl: string;
  httpUrl: string;
  close(): Promise<void>;
}

async function listen(app: INestApplication, path: string): Promise<TestApp> {
  app.enableShutdownHooks();
  await app.listen(0, '127.0.0.1');
  const { port } = app.getHttpServer().address() as AddressInfo;
  let closed = false;
  return {
    app,
    service: app.get(OcppClusterService),
    port,
    wsUrl: `ws://127.0.0.1:${port}${path}`,
    httpUrl: `http://127.0.0.1:${port}`,
    close: async () => {
      if (closed) return;
      closed = true;
      await app.close();
    },
  };
}

/** The sample CSMS in this process on a free port. */
export async function startSampleApp(options: OcppClusterOptions = {}): Promise<TestApp> {
  const moduleRef = await Test.createTestingModule({
    imports: [AppModule.forOptions({ logging: false, ...options })],
  }).compile();
  return listen(moduleRef.createNestApplication({ logger: false }), options.path ?? '/ocpp');
}

/** A bare app with the module and the given handler providers. */
export async function startModuleApp(
  options: OcppClusterOptions,
  providers: Provider[] = [],
  controllers: Type[] = [],
): Promise<TestApp> {
  const moduleRef = await Test.createTestingModule({
    imports: [OcppClusterModule.forRoot({ logging: false, ...options })],
    providers,
    controllers,
  }).compile();
  return listen(moduleRef.createNestApplication({ logger: false }), options.path ?? '/ocpp');
}
