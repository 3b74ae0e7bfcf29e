import { Controller, Get, Res } from '@nestjs/common';
import { OcppPrometheusMetrics } from '../lib/index.js';

/** The slice of the platform response (Express or Fastify) this needs. */
interface TextResponse {
  header(name: string, value: string): unknown;
  send(body: string): unknown;
}

@Controller('metrics')
export class MetricsController {
  constructor(private readonly metrics: OcppPrometheusMetrics) {}

  /** Prometheus text: point the scraper here. */
  @Get()
  async scrape(@Res() response: TextResponse): Promise<void> {
    const { contentType, body } = await this.metrics.text();
    response.header('content-type', contentType);
    response.send(body);
  }
}
