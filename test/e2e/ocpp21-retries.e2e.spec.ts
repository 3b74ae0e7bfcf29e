import 'reflect-metadata';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import { OcppHandler } from '../../lib/index.js';
import { RawChargePoint } from '../support/charge-point.js';
import { startModuleApp } from '../support/ocpp-test-app.js';
import type { TestApp } from '../support/ocpp-test-app.js';

/** What each handler answered, in order: a run that did not happen leaves no trace here. */
const runs = { boot: [] as unknown[], heartbeat: [] as unknown[], dataTransfer: 0 };
let clock = Date.UTC(2030, 0, 1);

@Injectable()
class StationHandlers {
  @OcppHandler('BootNotification')
  boot() {
    const answer = { status: 'Accepted' as const, currentTime: new Date(++clock).toISOString(), interval: 300 };
    runs.boot.push(answer);
    return answer;
  }

  @OcppHandler('Heartbeat')
  heartbeat() {
    // Each run a distinct time: a replayed answer is recognisable.
    const answer = { currentTime: new Date(++clock).toISOString() };
    runs.heartbeat.push(answer);
    return answer;
  }

  @OcppHandler('DataTransfer')
  dataTransfer(payload: { data?: unknown }) {
    runs.dataTransfer++;
    return { status: 'Accepted' as const, data: payload.data as string | undefined };
  }
}

const PER_CHARGE_POINT = 256 * 1024;
const PER_NODE = 2 * 1024 * 1024;
const BOOT = { reason: 'PowerUp', chargingStation: { model: 'M', vendorName: 'V' } };

const open: RawChargePoint[] = [];

async function connectChargePoint(app: TestApp, identity: string): Promise<RawChargePoint> {
  const cp = await RawChargePoint.connect(`${app.wsUrl}/${identity}`, 'ocpp2.1');
  open.push(cp);
  return cp;
}

/** Sends a CALL and returns the CALLRESULT payload (or fails on anything else). */
async function call(cp: RawChargePoint, id: string, action: string, payload: unknown): Promise<any> {
  const seen = cp.frames.length;
  cp.send([2, id, action, payload]);
  const reply = await cp.nextFrame((frame) => cp.frames.indexOf(frame) >= seen && frame[1] === id, 10_000);
  expect(reply[0]).toBe(3);
  return reply[2];
}

afterEach(() => {
  for (const cp of open.splice(0)) cp.close();
});

describe('OCPP 2.1 retries (real sockets)', () => {
  let app: TestApp;
  const chargePoint = (identity: string) => connectChargePoint(app, identity);

  beforeAll(async () => {
    app = await startModuleApp({ nodeId: 'retry-node', pingIntervalMs: 0 }, [StationHandlers]);
  });
  afterAll(async () => {
    await app?.close();
  });

  it('replays a retried CALL on a new connection without running the handler again', async () => {
    const first = await chargePoint('RETRY-1');
    const before = runs.heartbeat.length;
    const answered = await call(first, 'h-retry', 'Heartbeat', {});
    first.close();

    const second = await chargePoint('RETRY-1');
    expect(await call(second, 'h-retry', 'Heartbeat', {})).toEqual(answered);
    expect(runs.heartbeat.length).toBe(before + 1);
  });

  it('runs a BootNotification again when a charger reuses its message id', async () => {
    const first = await chargePoint('BOOT-1');
    const before = runs.boot.length;
    expect(await call(first, 'boot-1', 'BootNotification', BOOT)).toEqual(runs.boot.at(-1));
    first.close();

    const second = await chargePoint('BOOT-1');
    const again = await call(second, 'boot-1', 'BootNotification', BOOT);
    expect(runs.boot.length).toBe(before + 2);
    expect(again).toEqual(runs.boot.at(-1));
  });

  it('after a boot, a Heartbeat reusing a pre-boot message id gets a fresh answer; a plain reconnect still replays', async () => {
    const first = await chargePoint('REBOOT-1');
    const beforeBoot = await call(first, '1', 'Heartbeat', {});
    first.close();

    // Reconnect without a boot: a retry.
    const reconnected = await chargePoint('REBOOT-1');
    expect(await call(reconnected, '1', 'Heartbeat', {})).toEqual(beforeBoot);
    reconnected.close();

    // Reboot: the charger counts its message ids from the start again.
    const rebooted = await chargePoint('REBOOT-1');
    await call(rebooted, '0', 'BootNotification', BOOT);
    const heartbeatsBefore = runs.heartbeat.length;
    const afterBoot = await call(rebooted, '1', 'Heartbeat', {});
    expect(runs.heartbeat.length).toBe(heartbeatsBefore + 1);
    expect(afterBoot).toEqual(runs.heartbeat.at(-1));
    expect(afterBoot).not.toEqual(beforeBoot);
  });
});

describe('OCPP 2.1 retry cache under a flood of large DataTransfers (real sockets)', () => {
  let app: TestApp;
  const chargePoint = (identity: string) => connectChargePoint(app, identity);

  beforeAll(async () => {
    app = await startModuleApp(
      { nodeId: 'flood-node', pingIntervalMs: 0, retryCache: { maxBytesPerChargePoint: PER_CHARGE_POINT, maxBytesPerNode: PER_NODE } },
      [StationHandlers],
    );
  });
  afterAll(async () => {
    await app?.close();
  });

  it('keeps the cached answers within its byte bounds while many sockets send ~50 KB DataTransfers', async () => {
    const payload = (identity: string, n: number) => ({ vendorId: 'acme', data: `${identity}-${n}-`.padEnd(50_000, 'x') });
    const replyBytes = Buffer.byteLength(JSON.stringify([3, 'dt-00', { status: 'Accepted', data: payload('FLOOD-00', 0).data }]));

    // One charge point alone: its own bound applies.
    const single = await chargePoint('FLOOD-00');
    for (let n = 0; n < 10; n++) await call(single, `dt-0${n}`, 'DataTransfer', payload('FLOOD-00', n));
    const afterOne = (await app.service.metrics()).retryCache;
    expect(afterOne.bytes).toBeLessThanOrEqual(PER_CHARGE_POINT);
    // The reply and a small fixed overhead per answer; the 50 KB request is not kept.
    const perCall = afterOne.bytes / afterOne.entries;
    expect(perCall).toBeGreaterThanOrEqual(replyBytes);
    expect(perCall).toBeLessThan(replyBytes + 1_024);
    expect(afterOne.bytes).toBeGreaterThanOrEqual(Math.floor(PER_CHARGE_POINT / perCall) * perCall);

    // Twenty at once, eight calls each (about 8 MB of replies): the node's bound applies.
    const identities = Array.from({ length: 20 }, (_, i) => `FLOOD-${String(i + 1).padStart(2, '0')}`);
    await Promise.all(
      identities.map(async (identity) => {
        const cp = await chargePoint(identity);
        for (let n = 0; n < 8; n++) await call(cp, `dt-${n}`, 'DataTransfer', payload(identity, n));
      }),
    );
    const afterFlood = (await app.service.metrics()).retryCache;
    expect(afterFlood.bytes).toBeLessThanOrEqual(PER_NODE);
    expect(afterFlood.bytes).toBeGreaterThanOrEqual(PER_NODE - perCall);
    // Ids differ by a character or two in length: the replies, not the requests, are what is counted.
    expect(Math.abs(afterFlood.bytes / afterFlood.entries - perCall)).toBeLessThan(4);

    // The node-wide oldest answers went first: the lone charger's last answer (kept by its own
    // bound) is gone and its retry runs the handler; a new answer is still replayed.
    const runsBefore = runs.dataTransfer;
    await call(single, 'dt-09', 'DataTransfer', payload('FLOOD-00', 9));
    expect(runs.dataTransfer).toBe(runsBefore + 1);
    await call(single, 'dt-new', 'DataTransfer', payload('FLOOD-00', 99));
    await call(single, 'dt-new', 'DataTransfer', payload('FLOOD-00', 99));
    expect(runs.dataTransfer).toBe(runsBefore + 2);
    expect((await app.service.metrics()).retryCache.bytes).toBeLessThanOrEqual(PER_NODE);
  });
});
