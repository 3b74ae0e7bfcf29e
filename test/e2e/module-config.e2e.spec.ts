import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Injectable, Module } from '@nestjs/common';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import type { AddressInfo } from 'node:net';
import {
  InvalidOptionsError,
  OcppClusterModule,
  OcppClusterService,
  OcppHandler,
  OCPP_CLUSTER_OPTIONS,
  OcppClusterHealthIndicator,
} from '../../lib/index.js';
import type { OcppClusterOptions } from '../../lib/index.js';
import { connectedChargePoint } from '../support/charge-point.js';

@Injectable()
class BootHandler {
  @OcppHandler('BootNotification')
  boot() {
    return { status: 'Accepted' as const, currentTime: new Date().toISOString(), interval: 60 };
  }
}

@Injectable()
class OcppSettings {
  readonly nodeId = 'from-config-service';
  readonly path = '/cfg';
}
@Module({ providers: [OcppSettings], exports: [OcppSettings] })
class SettingsModule {}

@Injectable()
class OcppOptionsFactory {
  createOcppClusterOptions(): OcppClusterOptions {
    return { nodeId: 'from-use-class', path: '/cls', logging: false };
  }
}
@Module({ providers: [OcppOptionsFactory], exports: [OcppOptionsFactory] })
class FactoryModule {}

/** Boots the app, connects one 1.6 charge point, and proves a BootNotification round trip. */
async function bootAndConnect(app: INestApplication, path: string, identity: string) {
  await app.listen(0, '127.0.0.1');
  const { port } = app.getHttpServer().address() as AddressInfo;
  const client = await connectedChargePoint(`ws://127.0.0.1:${port}${path}`, identity);
  const reply = await client.call('BootNotification', { chargePointVendor: 'V', chargePointModel: 'M' });
  await client.close();
  return reply;
}

describe('OcppClusterModule configuration styles', () => {
  let app: INestApplication | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  it('forRoot', async () => {
    const ref = await Test.createTestingModule({
      imports: [OcppClusterModule.forRoot({ nodeId: 'from-root', logging: false })],
      providers: [BootHandler],
    }).compile();
    app = ref.createNestApplication({ logger: false });
    expect(await bootAndConnect(app, '/ocpp', 'CP1')).toMatchObject({ status: 'Accepted' });
    expect(app.get(OcppClusterService).nodeId).toBe('from-root');
  });

  it('health output names the transport in use (memory by default), not redis', async () => {
    const ref = await Test.createTestingModule({
      imports: [OcppClusterModule.forRoot({ nodeId: 'in-memory-health', logging: false })],
    }).compile();
    app = ref.createNestApplication({ logger: false });
    await app.listen(0, '127.0.0.1');
    const ready = await app.get(OcppClusterHealthIndicator).isReady();
    expect(ready.ocpp).toMatchObject({ status: 'up', transport: 'memory', memory: { bus: { ok: true } } });
    expect(ready.ocpp).not.toHaveProperty('redis');
  });

  it('forRootAsync with useFactory, inject and imports', async () => {
    const ref = await Test.createTestingModule({
      imports: [
        OcppClusterModule.forRootAsync({
          imports: [SettingsModule],
          inject: [OcppSettings],
          useFactory: (settings: OcppSettings) => ({ nodeId: settings.nodeId, path: settings.path, logging: false }),
        }),
      ],
      providers: [BootHandler],
    }).compile();
    app = ref.createNestApplication({ logger: false });
    expect(await bootAndConnect(app, '/cfg', 'CP2')).toMatchObject({ status: 'Accepted' });
    expect(app.get(OcppClusterService).nodeId).toBe('from-config-service');
  });

  it('forRootAsync with useClass', async () => {
    const ref = await Test.createTestingModule({
      imports: [OcppClusterModule.forRootAsync({ useClass: OcppOptionsFactory })],
      providers: [BootHandler],
    }).compile();
    app = ref.createNestApplication({ logger: false });
    expect(await bootAndConnect(app, '/cls', 'CP3')).toMatchObject({ status: 'Accepted' });
    expect(app.get(OcppClusterService).nodeId).toBe('from-use-class');
  });

  it('forRootAsync with useExisting', async () => {
    const ref = await Test.createTestingModule({
      imports: [OcppClusterModule.forRootAsync({ imports: [FactoryModule], useExisting: OcppOptionsFactory })],
      providers: [BootHandler],
    }).compile();
    app = ref.createNestApplication({ logger: false });
    expect(await bootAndConnect(app, '/cls', 'CP4')).toMatchObject({ status: 'Accepted' });
    expect(app.get(OcppClusterService).nodeId).toBe('from-use-class');
  });

  it('isGlobal makes the service injectable in other modules', async () => {
    @Injectable()
    class Consumer {
      constructor(readonly ocpp: OcppClusterService) {}
    }
    @Module({ providers: [Consumer], exports: [Consumer] })
    class FeatureModule {}
    const ref = await Test.createTestingModule({
      imports: [OcppClusterModule.forRoot({ nodeId: 'global-node', logging: false, isGlobal: true }), FeatureModule],
    }).compile();
    app = ref.createNestApplication({ logger: false });
    await app.init();
    expect(app.get(Consumer).ocpp.nodeId).toBe('global-node');
    expect(app.get(OCPP_CLUSTER_OPTIONS)).toMatchObject({ nodeId: 'global-node' });
  });

  it('rejects bad options at start-up with an error that names the option', async () => {
    const build = (options: OcppClusterOptions) =>
      Test.createTestingModule({ imports: [OcppClusterModule.forRoot({ logging: false, ...options })] }).compile();
    await expect(build({ callTimeoutMs: -1 })).rejects.toThrow(InvalidOptionsError);
    await expect(build({ callTimeoutMs: -1 })).rejects.toThrow(/callTimeoutMs/);
    await expect(build({ protocols: ['ocpp9' as never] })).rejects.toThrow(/"protocols"/);
    await expect(build({ path: 'ocpp' })).rejects.toThrow(/"path"/);
    await expect(build({ nodeId: 'bad id with spaces' })).rejects.toThrow(/"nodeId"/);
    await expect(build({ rateLimit: { capacity: 0, refillPerSecond: 1 } })).rejects.toThrow(/rateLimit.capacity/);
  });
});
