import { OcppPrometheusMetrics } from '../../lib/health/ocpp-prometheus-metrics.js';

/** The value of one ocpp_inbound_calls_total series as the registry exposes it. */
async function inboundCalls(metrics: OcppPrometheusMetrics, labels: string): Promise<number | undefined> {
  const text = await metrics.registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith(`ocpp_inbound_calls_total{${labels}}`));
  return line === undefined ? undefined : Number(line.split(' ').pop());
}

describe('inbound call counts', () => {
  it('reach the registry at every scrape, each call counted once', async () => {
    const metrics = new OcppPrometheusMetrics();
    for (let i = 0; i < 3; i++) metrics.inboundCall('ocpp1.6', 'Heartbeat', 'ok');
    metrics.inboundCall('ocpp1.6', 'Heartbeat', 'FormationViolation');
    metrics.inboundCall('ocpp2.0.1', 'Heartbeat', 'ok');
    const ok16 = 'protocol="ocpp1.6",action="Heartbeat",outcome="ok"';
    expect(await inboundCalls(metrics, ok16)).toBe(3);
    expect(await inboundCalls(metrics, 'protocol="ocpp1.6",action="Heartbeat",outcome="FormationViolation"')).toBe(1);
    expect(await inboundCalls(metrics, 'protocol="ocpp2.0.1",action="Heartbeat",outcome="ok"')).toBe(1);

    // A scrape with nothing new changes nothing; calls after it add to what was there.
    expect(await inboundCalls(metrics, ok16)).toBe(3);
    metrics.inboundCall('ocpp1.6', 'Heartbeat', 'ok');
    metrics.inboundCall('ocpp1.6', 'Heartbeat', 'ok');
    expect(await inboundCalls(metrics, ok16)).toBe(5);
    expect(await inboundCalls(metrics, 'protocol="ocpp2.0.1",action="Heartbeat",outcome="ok"')).toBe(1);
  });
});
