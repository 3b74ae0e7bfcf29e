import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module.js';
import { sampleConfigFromEnv } from './sample-config.js';

async function bootstrap(): Promise<void> {
  const config = sampleConfigFromEnv();
  const app = await NestFactory.create(AppModule.forOptions(config.ocpp), { logger: ['log', 'warn', 'error'] });
  app.enableShutdownHooks();
  await app.listen(config.port);
  const address = app.getHttpServer().address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  console.log(`sample CSMS listening on http://localhost:${port} (charge points: ws://localhost:${port}${config.ocpp.path}/<identity>)`);
}

bootstrap().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
