import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import puppeteer from 'puppeteer-core';
import type { Browser, Page } from 'puppeteer-core';
import { connectedChargePoint } from '../support/charge-point.js';
import type { RpcClient } from '../support/charge-point.js';
import { CsmsProcess } from '../support/csms-process.js';
import { startRedisServer, stopAllRedisServers } from '../support/redis-server.js';
import type { RedisServer } from '../support/redis-server.js';
import { waitFor } from '../support/wait.js';

/**
 * The live cluster page (README, "Cluster page") in real headless Chromium (Debian's `chromium`,
 * driven by puppeteer-core): two sample processes on one Redis; the page of node A shows the
 * charger connected to node B on node B, and a command sent from the page's form shows its reply
 * and lands in the recent commands. With UPDATE_SCREENSHOT=1 it refreshes docs/cluster-page.png (README).
 */

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SCREENSHOT = fileURLToPath(new URL('../../docs/cluster-page.png', import.meta.url));

describe('cluster page (two sample processes, real Redis, headless Chromium)', () => {
  let redis: RedisServer;
  let nodeA: CsmsProcess;
  let nodeB: CsmsProcess;
  const chargers: RpcClient[] = [];
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    redis = await startRedisServer();
    const env = { REDIS_URL: redis.url, OCPP_PING_INTERVAL_MS: '0', CONTROL_TOKEN: 'page-secret' };
    [nodeA, nodeB] = await CsmsProcess.startTogether([
      ['page-a', env],
      ['page-b', env],
    ]);
    const onB = await connectedChargePoint(nodeB.wsUrl, 'CP-PAGE-16', { protocols: ['ocpp1.6'] });
    onB.handle('Reset', ({ params }) => ({ status: params.type === 'Soft' ? 'Accepted' : 'Rejected' }));
    chargers.push(onB, await connectedChargePoint(nodeA.wsUrl, 'CP-PAGE-201', { protocols: ['ocpp2.0.1'] }));
    browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
    page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 820 });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await Promise.all(chargers.map((charger) => charger.close({ force: true }).catch(() => undefined)));
    await Promise.all([nodeA?.stop(), nodeB?.stop()]);
    await stopAllRedisServers();
  });

  const text = (selector: string): Promise<string | null> => page.$eval(selector, (node) => node.textContent).catch(() => null);

  it('shows each charger on its node, and a command sent from the form with its reply', async () => {
    await page.goto(`${nodeA.httpUrl}/`);
    // The data route needs the control token: the page says so until it is given.
    await waitFor('the page to ask for the token', async () => (await text('#state-error'))?.includes('HTTP 401'));
    await page.type('#token', 'page-secret');
    await page.$eval('#token', (input) => input.dispatchEvent(new Event('change')));

    const onNodeB = '[data-node="page-b"][data-status="up"] [data-charger="CP-PAGE-16"]';
    await waitFor('CP-PAGE-16 on node B, node B up', () => page.$(onNodeB));
    await waitFor('CP-PAGE-201 on node A', () => page.$('[data-node="page-a"][data-status="up"] [data-charger="CP-PAGE-201"]'));
    expect(await text('[data-node="page-b"] .protocols')).toBe('ocpp1.6: 1');
    expect(await text('[data-node="page-a"] .protocols')).toBe('ocpp2.0.1: 1');
    expect(await text('#self')).toBe('page-a');

    await page.type('#identity', 'CP-PAGE-16');
    // Runs in the page (no DOM types here): set the fields' values.
    await page.$eval('#action', (input) => ((input as unknown as { value: string }).value = 'Reset'));
    await page.$eval('#payload', (input) => ((input as unknown as { value: string }).value = '{"type":"Soft"}'));
    await page.click('#send button[type=submit]');
    const reply = await waitFor('the reply under the form', async () => {
      const shown = await text('#reply');
      return shown?.startsWith('HTTP ') ? shown : null;
    });
    expect(reply).toMatch(/^HTTP 200 in \d+ ms\n/);
    expect(JSON.parse(reply.slice(reply.indexOf('\n') + 1))).toEqual({ result: { status: 'Accepted' } });

    const row = '#commands tbody tr[data-action="Reset"][data-identity="CP-PAGE-16"]';
    await waitFor('the command in the recent commands', () => page.$(row));
    const cells = await page.$$eval(`${row} td`, (tds) => tds.map((td) => td.textContent));
    expect(cells).toEqual([expect.any(String), 'page-a', 'CP-PAGE-16', 'Reset', 'result', '200', expect.stringMatching(/^\d+ ms$/)]);

    // Only on request, so a test run leaves the work tree as it was.
    if (process.env.UPDATE_SCREENSHOT === '1') {
      mkdirSync(fileURLToPath(new URL('../../docs', import.meta.url)), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
    }
  }, 90_000);
});
