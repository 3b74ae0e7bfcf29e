import { describe, expect, it } from '@jest/globals';
import { NatsTransport } from '../../lib/nats/nats-transport.js';
import { InvalidEnvironmentError } from '../../sample/environment.js';
import { sampleConfigFromEnv } from '../../sample/sample-config.js';

/** The sample on NATS: NATS_URL picks the transport; OCPP_NATS_REPLICAS is checked once, by name. */
describe('the sample NATS environment', () => {
  it('builds the NATS transport from NATS_URL with OCPP_NATS_REPLICAS', () => {
    const { ocpp } = sampleConfigFromEnv({ NATS_URL: 'nats://127.0.0.1:1,nats://127.0.0.1:2', OCPP_NATS_REPLICAS: '3' });
    expect(ocpp.adapter).toBeInstanceOf(NatsTransport);
  });

  it.each(['0', '6', 'three', '1.5'])('refuses OCPP_NATS_REPLICAS=%s, naming the variable', (value) => {
    const build = () => sampleConfigFromEnv({ NATS_URL: 'nats://127.0.0.1:1', OCPP_NATS_REPLICAS: value });
    expect(build).toThrow(InvalidEnvironmentError);
    expect(build).toThrow(/OCPP_NATS_REPLICAS/);
  });
});
