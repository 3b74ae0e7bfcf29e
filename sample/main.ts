import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module.js';
import { boardStoreFromEnv } from './cluster-board.js';
import { HttpTracingInterceptor } from './http-tracing.interceptor.js';
import { sampleConfigFromEnv } from './sample-config.js';
import { startTracing } from './tracing.js';

async function bootstrap(): Promise<void> {
  const config = sampleConfigFromEnv();
  // Before the app: the library's spans and the HTTP spans go to the registered SDK.
  const tracing = startTracing();
  const app = await NestFactory.create(AppModule.forOptions(config.ocpp, config.control, boardStoreFromEnv(process.env)), { logger: ['log', 'warn', 'error'] });
  if (tracing) app.useGlobalInterceptors(new HttpTracingInterceptor());
  // Termination signals only: Nest's default list includes SIGUSR2 (used by tools such as nodemon
  // and --heapsnapshot-signal), on which the node would drain and close its server.
  app.enableShutdownHooks(['SIGTERM', 'SIGINT']);
  await app.listen(config.port);
  const address = app.getHttpServer().address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  if (config.control.token === undefined) {
    new Logger('ControlApi').warn(
      '!!! CONTROL_TOKEN is not set: anyone who reaches this port can list chargers and send them commands ' +
        '(/chargers, /broadcast, /broadcast-batch). Set CONTROL_TOKEN outside a local trial. !!!',
    );
  }
  if (config.ocpp.port !== undefined) console.log(`charge points (security profile 3): wss://localhost:${config.ocpp.port}${config.ocpp.path}/<identity>`);
  if (config.ocpp.authenticate === undefined) {
    new Logger('ControlApi').warn('OCPP_PASSWORDS_FILE is not set: any charge point may connect under any identity.');
  }
  console.log(`sample CSMS listening on http://localhost:${port} (charge points: ws://localhost:${port}${config.ocpp.path}/<identity>)`);
}

bootstrap().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
