import { describe, expect, it } from '@jest/globals';
import { overtakenCasWarning } from '../../lib/nats/cas-confirmation.js';

describe('the warning about compare-and-sets checked at proposal (nats-server#4320)', () => {
  it('names the version, the issue and what is weaker on a clustered server before 2.9.21 with replicas', () => {
    const warning = overtakenCasWarning({ version: '2.9.10', cluster: 'c1' }, 3);
    expect(warning).toContain('nats-server 2.9.10');
    expect(warning).toContain('nats-server#4320');
    expect(warning).toContain('two survivors may both fence the same lost node');
    expect(warning).toContain('heartbeat racing');
    expect(warning).toContain('>= 2.9.21');
  });

  it('says nothing on a fixed, standalone or unreplicated deployment', () => {
    expect(overtakenCasWarning({ version: '2.9.21', cluster: 'c1' }, 3)).toBeNull();
    expect(overtakenCasWarning({ version: '2.10.4', cluster: 'c1' }, 3)).toBeNull();
    expect(overtakenCasWarning({ version: '2.9.10', cluster: undefined }, 3)).toBeNull();
    expect(overtakenCasWarning({ version: '2.9.10', cluster: 'c1' }, 1)).toBeNull();
  });
});
