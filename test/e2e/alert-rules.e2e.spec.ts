import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { connectedChargePoint } from '../support/charge-point.js';
import type { RpcClient } from '../support/charge-point.js';
import { CsmsProcess } from '../support/csms-process.js';
import { startRedisServer, stopAllRedisServers } from '../support/redis-server.js';
import type { RedisServer } from '../support/redis-server.js';

/**
 * The alerting rules (README, "Alerting rules"): promtool (Debian's `prometheus` package) accepts
 * the file and its unit tests pass, and every metric it names is one a real sample node serves on GET /metrics.
 */

const RULES = fileURLToPath(new URL('../../deploy/prometheus/ocpp-cluster-alerts.yml', import.meta.url));
const RULE_TESTS = fileURLToPath(new URL('../../deploy/prometheus/ocpp-cluster-alerts.test.yml', import.meta.url));

/** Series names a scrape can hold: a histogram `x` serves x_bucket, x_sum and x_count. */
function servedNames(exposition: string): Set<string> {
  const names = new Set<string>();
  for (const match of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, type] = match;
    names.add(name);
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
  }
  return names;
}

describe('Prometheus alerting rules', () => {
  let redis: RedisServer;
  let node: CsmsProcess;
  let charger: RpcClient;

  beforeAll(async () => {
    redis = await startRedisServer();
    node = await CsmsProcess.start('alerts-a', { REDIS_URL: redis.url, OCPP_PING_INTERVAL_MS: '0' });
    charger = await connectedChargePoint(node.wsUrl, 'CP-ALERTS', { protocols: ['ocpp1.6'] });
    charger.handle('Reset', () => ({ status: 'Accepted' }));
  }, 60_000);

  afterAll(async () => {
    await charger?.close({ force: true }).catch(() => undefined);
    await node?.stop();
    await stopAllRedisServers();
  });

  it('pass promtool check rules', () => {
    const check = spawnSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8' });
    expect(check.error).toBeUndefined(); // promtool missing: apt-get install prometheus (.ci/run does)
    expect({ status: check.status, output: check.stdout + check.stderr }).toEqual({ status: 0, output: expect.stringContaining('SUCCESS') });
  });

  it('fire on the series they watch (promtool test rules)', () => {
    const test = spawnSync('promtool', ['test', 'rules', RULE_TESTS], { encoding: 'utf8' });
    expect({ status: test.status, output: test.stdout + test.stderr }).toEqual({ status: 0, output: expect.stringContaining('SUCCESS') });
  });

  it('name only metrics a node serves', async () => {
    // A call, so that the labelled series exist too.
    expect((await node.http('POST', '/chargers/CP-ALERTS/calls/Reset', { type: 'Soft' })).status).toBe(200);
    const scrape = await fetch(`${node.httpUrl}/metrics`);
    expect(scrape.status).toBe(200);
    const served = servedNames(await scrape.text());
    const rules = readFileSync(RULES, 'utf8');
    const exprs = [...rules.matchAll(/expr: (\|\n(?:\s{10}.*\n)+|.*)/g)].map((match) => match[1]);
    expect(exprs.length).toBeGreaterThanOrEqual(10);
    const used = new Set(exprs.flatMap((expr) => [...expr.matchAll(/\b(ocpp_[a-z0-9_]+)\b/g)].map((match) => match[1])));
    for (const expr of exprs) expect(expr).toMatch(/\bocpp_[a-z0-9_]+\b/);
    expect([...used].filter((name) => !served.has(name))).toEqual([]);
    expect(used.size).toBeGreaterThanOrEqual(9);
  });
});
