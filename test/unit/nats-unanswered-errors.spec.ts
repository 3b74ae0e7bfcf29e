import { describe, expect, it } from '@jest/globals';
import { JetStreamApiError } from '@nats-io/jetstream';
import { jserrors } from '@nats-io/jetstream/internal';
import { ClosedConnectionError, NoRespondersError, RequestError, TimeoutError } from '@nats-io/transport-node';
import { isJetStreamNotAnswering } from '../../lib/nats/nats-errors.js';

/** The errors the NATS client throws, as connect() sorts them: ask again later, or fail now. */
describe('which JetStream failures connect() tries again', () => {
  const apiError = (err_code: number, code: number, description: string): JetStreamApiError => new JetStreamApiError({ err_code, code, description });

  it('tries again when nothing answered in time or JetStream is not ready', () => {
    expect(isJetStreamNotAnswering(new TimeoutError())).toBe(true);
    const noResponders = new RequestError('no responders', { cause: new NoRespondersError('$JS.API.INFO') });
    expect(isJetStreamNotAnswering(noResponders)).toBe(true);
    expect(isJetStreamNotAnswering(new jserrors.JetStreamNotEnabled('jetstream is not enabled', { cause: noResponders }))).toBe(true);
    expect(isJetStreamNotAnswering(apiError(10008, 503, 'JetStream system temporarily unavailable'))).toBe(true);
    expect(isJetStreamNotAnswering(apiError(10009, 500, 'JetStream cluster can not handle request'))).toBe(true);
    expect(isJetStreamNotAnswering(apiError(10005, 500, 'no suitable peers for placement'))).toBe(true);
  });

  it('fails at once on a refusal that names its cause, or a closed connection', () => {
    expect(isJetStreamNotAnswering(apiError(10058, 400, 'stream name already in use with a different configuration'))).toBe(false);
    expect(isJetStreamNotAnswering(apiError(10065, 400, 'subjects overlap with an existing stream'))).toBe(false);
    const notForAccount = apiError(10039, 503, 'jetstream not enabled for account');
    expect(isJetStreamNotAnswering(new jserrors.JetStreamNotEnabled(notForAccount.message, { cause: notForAccount }))).toBe(false);
    expect(isJetStreamNotAnswering(new ClosedConnectionError())).toBe(false);
    expect(isJetStreamNotAnswering(new Error('authorization violation'))).toBe(false);
  });
});
