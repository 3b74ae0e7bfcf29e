import { Redis } from 'ioredis';
import {
  LEASE_HELD_ELSEWHERE,
  LEASE_RESUMED,
  LEASE_TAKEN,
  LEASE_TAKEN_OVER,
  LIVENESS_ACQUIRE,
  LIVENESS_REFRESH,
  LIVENESS_RELEASE,
  TAKEOVER_FENCE,
  NODE_CLEANUP,
  MEMBERSHIP_SADD,
  PRESENCE_CLAIM,
  PRESENCE_REMOVE_IF_OWNER,
  TOKEN_ACQUIRE,
  TOKEN_REFRESH,
  TOKEN_RELEASE,
} from '../../lib/redis/lua-scripts.js';
import { PresenceStore } from '../../lib/redis/presence-store.js';
import { RedisConnectionPool } from '../../lib/redis/redis-connection-pool.js';
import { createDriver, type RedisDriver } from '../../lib/redis/redis-driver.js';
import { RedisKeys } from '../../lib/redis/redis-keys.js';
import { commandCalls, MemoryLogger } from '../support/redis-fixtures.js';
import { startRedisServer, stopAllRedisServers, type RedisServer } from '../support/redis-server.js';

describe('Lua presence fencing and token scripts (real Redis)', () => {
  let server: RedisServer;
  let driver: RedisDriver;
  let redis: Redis;
  let store: PresenceStore;
  const keys = new RedisKeys();

  beforeAll(async () => {
    server = await startRedisServer();
    driver = createDriver({ url: server.url, logger: new MemoryLogger() });
    redis = new Redis(server.port, { lazyConnect: false });
    redis.on('error', () => undefined);
    store = new PresenceStore({ keys, pool: new RedisConnectionPool(driver), presenceTtlMs: 60_000 });
  });

  afterAll(async () => {
    await driver?.close();
    redis?.disconnect();
    await stopAllRedisServers();
  });

  beforeEach(async () => {
    await redis.flushall();
  });

  describe('presence', () => {
    it('gives the newest claim a higher epoch and reports who held the identity', async () => {
      const first = await store.claim('CP1', 'A', 'ocpp1.6', 1000);
      expect(first.previous).toBeNull();
      const second = await store.claim('CP1', 'B', 'ocpp2.0.1', 2000);
      expect(second.record.epoch).toBeGreaterThan(first.record.epoch);
      expect(second.previous).toEqual({ ...first.record });
      expect(await store.get('CP1')).toEqual(second.record);
    });

    it('keeps epochs increasing for back-to-back claims and after a removal', async () => {
      const epochs: number[] = [];
      for (let i = 0; i < 20; i++) {
        const { record } = await store.claim('CP1', i % 2 ? 'A' : 'B', 'ocpp1.6', i);
        epochs.push(record.epoch);
        if (i % 3 === 0) await store.remove('CP1', record.nodeId, record.epoch);
      }
      for (let i = 1; i < epochs.length; i++) expect(epochs[i]).toBeGreaterThan(epochs[i - 1]);
    });

    it('gives a post-outage claim a higher epoch than any pre-outage one (time-based floor)', async () => {
      const before = await store.claim('CP1', 'A', 'ocpp1.6', 1);
      await redis.flushall();
      const after = await store.claim('CP1', 'B', 'ocpp1.6', 2);
      expect(after.record.epoch).toBeGreaterThan(before.record.epoch);
      expect(after.previous).toBeNull();
    });

    it('refuses a stale remove and a stale refresh (node and epoch compared atomically)', async () => {
      const a = await store.claim('CP1', 'A', 'ocpp1.6', 1);
      const b = await store.claim('CP1', 'B', 'ocpp1.6', 2);
      expect(await store.remove('CP1', 'A', a.record.epoch)).toBe(false);
      expect(await store.remove('CP1', 'B', a.record.epoch)).toBe(false);
      const refresh = await store.refresh([a.record], 'A');
      expect(refresh).toEqual({ refreshed: 0, missing: [], lost: [a.record] });
      expect(await store.get('CP1')).toEqual(b.record);
      expect(await store.remove('CP1', 'B', b.record.epoch)).toBe(true);
      expect(await store.get('CP1')).toBeNull();
    });

    it('refreshes only what it owns and reports entries Redis lost', async () => {
      const a = await store.claim('CP1', 'A', 'ocpp1.6', 1);
      const gone = await store.claim('CP2', 'A', 'ocpp1.6', 1);
      await redis.pexpire(keys.presence('CP1'), 500);
      await redis.del(keys.presence('CP2'));
      const result = await store.refresh([a.record, gone.record], 'A');
      expect(result.refreshed).toBe(1);
      expect(result.missing).toEqual([gone.record]);
      expect(await redis.pttl(keys.presence('CP1'))).toBeGreaterThan(30_000);
    });

    it('rehydrates only where no newer owner exists', async () => {
      const a = await store.claim('CP1', 'A', 'ocpp1.6', 1);
      const b = await store.claim('CP1', 'B', 'ocpp1.6', 2);
      // A comes back believing it still holds CP1: refused, B stays.
      const [refused] = await store.rehydrate([a.record], 'A');
      expect(refused.status).toBe('refused');
      expect(refused.existing).toEqual(b.record);
      expect(await store.get('CP1')).toEqual(b.record);
      // B re-registering its own entry only refreshes it.
      const [kept] = await store.rehydrate([b.record], 'B');
      expect(kept.status).toBe('kept');
    });

    it('rehydrates over an older owner (after a flush, order does not matter)', async () => {
      const a = await store.claim('CP1', 'A', 'ocpp1.6', 1);
      const b = await store.claim('CP1', 'B', 'ocpp1.6', 2);
      await redis.flushall();
      // The older one comes back first ...
      expect((await store.rehydrate([a.record], 'A'))[0].status).toBe('written');
      // ... the newer one still wins and learns whom it displaced.
      const [displaced] = await store.rehydrate([b.record], 'B');
      expect(displaced.status).toBe('displaced');
      expect(displaced.existing).toEqual(a.record);
      expect(await store.get('CP1')).toEqual(b.record);
      // A fresh claim afterwards is above both.
      const c = await store.claim('CP1', 'C', 'ocpp1.6', 3);
      expect(c.record.epoch).toBeGreaterThan(b.record.epoch);
    });

    it('adopts an epoch-0 socket unless a later connection owns the identity', async () => {
      const [adopted] = await store.rehydrate([{ identity: 'CP1', nodeId: 'A', epoch: 0, protocol: 'ocpp1.6', connectedAt: 10 }], 'A');
      expect(adopted.status).toBe('written');
      expect(adopted.record.epoch).toBeGreaterThan(0);
      await store.claim('CP2', 'B', 'ocpp1.6', Date.now());
      const [refused] = await store.rehydrate([{ identity: 'CP2', nodeId: 'A', epoch: 0, protocol: 'ocpp1.6', connectedAt: 10 }], 'A');
      expect(refused.status).toBe('refused');
      expect((await store.get('CP2'))?.nodeId).toBe('B');
    });

    it('rehydrates one batch mixing newer owners elsewhere, older owners, its own entries and lost ones', async () => {
      const olderElsewhere = await store.claim('OLD', 'B', 'ocpp1.6', 1);
      const ours = await store.claim('OLD', 'A', 'ocpp1.6', 2);
      const oursStill = await store.claim('KEPT', 'A', 'ocpp1.6', 3);
      const stale = await store.claim('NEWER', 'A', 'ocpp1.6', 4);
      const newer = await store.claim('NEWER', 'B', 'ocpp1.6', 5);
      const lost = await store.claim('LOST', 'A', 'ocpp1.6', 6);
      await redis.del(keys.presence('LOST'));
      // OLD: B's older entry came back (e.g. B re-registered first after a flush): ours displaces it.
      await redis.hset(keys.presence('OLD'), 'node', 'B', 'epoch', String(olderElsewhere.record.epoch));
      const unclaimed = { identity: 'FRESH', nodeId: 'A', epoch: 0, protocol: 'ocpp1.6' as const, connectedAt: 7 };

      const results = await store.rehydrate([ours.record, oursStill.record, stale.record, lost.record, unclaimed], 'A');
      const status = Object.fromEntries(results.map((result) => [result.record.identity, result.status]));
      expect(status).toEqual({ OLD: 'displaced', KEPT: 'kept', NEWER: 'refused', LOST: 'written', FRESH: 'written' });
      expect(await store.get('NEWER')).toEqual(newer.record);
      expect(results.find((result) => result.record.identity === 'NEWER')?.existing).toEqual(newer.record);
      expect(await store.get('OLD')).toEqual(ours.record);
      expect(await store.get('LOST')).toEqual(lost.record);
      expect((await store.get('FRESH'))?.epoch).toBeGreaterThan(0);
      expect((await store.ownedIdentities('A')).sort()).toEqual(['FRESH', 'KEPT', 'LOST', 'OLD']);
    });

    it('refreshes one batch mixing owned, lost and taken entries', async () => {
      const owned = await store.claim('CP1', 'A', 'ocpp1.6', 1);
      const taken = await store.claim('CP2', 'A', 'ocpp1.6', 1);
      await store.claim('CP2', 'B', 'ocpp1.6', 2);
      const gone = await store.claim('CP3', 'A', 'ocpp1.6', 1);
      await redis.del(keys.presence('CP3'));
      const result = await store.refresh([owned.record, taken.record, gone.record], 'A');
      expect(result.refreshed).toBe(1);
      expect(result.lost.map((record) => record.identity)).toEqual(['CP2']);
      expect(result.missing.map((record) => record.identity)).toEqual(['CP3']);
    });

    it('claims made in the same tick share a call yet keep their order: the later claim wins', async () => {
      const identities = Array.from({ length: 450 }, (_, i) => `CP${i}`);
      const [first, second, ...rest] = await Promise.all([
        store.claim('SAME', 'A', 'ocpp1.6', 1),
        store.claim('SAME', 'B', 'ocpp1.6', 2),
        ...identities.map((identity) => store.claim(identity, 'A', 'ocpp1.6', 3)),
      ]);
      expect(second.record.epoch).toBeGreaterThan(first.record.epoch);
      expect(second.previous).toEqual(first.record);
      expect(await store.get('SAME')).toEqual(second.record);
      expect(new Set(rest.map((claim) => claim.record.identity))).toEqual(new Set(identities));
      expect((await store.getBatch(identities)).size).toBe(450);
      expect(await store.ownedIdentities('A')).toHaveLength(451);
    });

    it('claims of many turns wait for one owned-index update together, not one per earlier turn', async () => {
      await redis.script('LOAD', PRESENCE_CLAIM.lua);
      await redis.script('LOAD', MEMBERSHIP_SADD.lua);
      const before = await redis.info('commandstats');
      // Redis holds every command for a moment: the claims of 20 turns (20 batches) all wait for
      // their replies at once, and each batch's index update would queue behind the previous one.
      await redis.client('PAUSE', 500, 'ALL');
      const claims = [];
      for (let turn = 0; turn < 20; turn++) {
        claims.push(store.claim(`TURN${turn}`, 'A', 'ocpp1.6', turn));
        await new Promise((resolve) => setImmediate(resolve));
      }
      const results = await Promise.all(claims);

      const after = await redis.info('commandstats');
      expect(results.map((claim) => claim.record.identity)).toEqual(claims.map((_, turn) => `TURN${turn}`));
      expect((await store.ownedIdentities('A')).sort()).toEqual(claims.map((_, turn) => `TURN${turn}`).sort());
      // 20 claim scripts (one per turn), and the owned-index updates: the first batch's alone, the rest together.
      const scriptCalls = commandCalls(after, 'evalsha') - commandCalls(before, 'evalsha');
      expect(scriptCalls - 20).toBeLessThanOrEqual(2);
    });

    it('removes a same-turn batch in a few script calls, never an entry a newer connection claimed', async () => {
      const owned = Array.from({ length: 400 }, (_, i) => `OWN${i}`);
      const claims = await Promise.all(owned.map((identity) => store.claim(identity, 'A', 'ocpp1.6', 1)));
      // Claimed since by a newer connection: on another node, and on this node again.
      const elsewhere = await store.claim('OWN0', 'B', 'ocpp1.6', 2);
      const reconnected = await store.claim('OWN1', 'A', 'ocpp1.6', 3);
      const neverClaimed = Array.from({ length: 50 }, (_, i) => `NEVER${i}`);
      await redis.script('LOAD', PRESENCE_REMOVE_IF_OWNER.lua);
      const before = await redis.info('commandstats');

      const removed = await Promise.all([
        ...claims.map(({ record }) => store.remove(record.identity, 'A', record.epoch)),
        ...neverClaimed.map((identity) => store.remove(identity, 'A', 1)),
      ]);

      const after = await redis.info('commandstats');
      expect(removed).toEqual([false, false, ...owned.slice(2).map(() => true), ...neverClaimed.map(() => false)]);
      // 450 removals of one turn: three script calls of at most 200 identities, one owned-index update.
      expect(commandCalls(after, 'evalsha') - commandCalls(before, 'evalsha')).toBe(3);
      expect(commandCalls(after, 'srem') - commandCalls(before, 'srem')).toBe(1);
      expect(await store.get('OWN0')).toEqual(elsewhere.record);
      expect(await store.get('OWN1')).toEqual(reconnected.record);
      expect((await store.getBatch([...owned, ...neverClaimed])).size).toBe(2);
      // Only what a removal removed leaves A's index; OWN0 stays there as a hint that B's entry outranks.
      expect((await store.ownedIdentities('A')).sort()).toEqual(['OWN0', 'OWN1']);
      expect((await store.listOwned('A')).map((record) => record.identity)).toEqual(['OWN1']);
      expect(await store.ownedIdentities('B')).toEqual(['OWN0']);
    });

    it('a claim and a removal of one identity in the same turn end as if run one after the other', async () => {
      const old = await store.claim('CP1', 'A', 'ocpp1.6', 1);
      // The old socket's removal first, then a new socket on this node: removed, then claimed anew.
      const [removedFirst, claimedSecond] = await Promise.all([
        store.remove('CP1', 'A', old.record.epoch),
        store.claim('CP1', 'A', 'ocpp1.6', 2),
      ]);
      expect(removedFirst).toBe(true);
      expect(claimedSecond.previous).toBeNull();
      expect(await store.get('CP1')).toEqual(claimedSecond.record);
      expect(await store.ownedIdentities('A')).toEqual(['CP1']);

      // The new claim first: the old socket's removal finds a newer epoch and leaves it.
      const [claimedFirst, removedSecond] = await Promise.all([
        store.claim('CP1', 'A', 'ocpp1.6', 3),
        store.remove('CP1', 'A', claimedSecond.record.epoch),
      ]);
      expect(removedSecond).toBe(false);
      expect(await store.get('CP1')).toEqual(claimedFirst.record);
      expect(await store.ownedIdentities('A')).toEqual(['CP1']);

      // Its last socket closing while another identity connects: each ends in its own state.
      const [, lastRemoval] = await Promise.all([
        store.claim('CP2', 'A', 'ocpp1.6', 4),
        store.remove('CP1', 'A', claimedFirst.record.epoch),
      ]);
      expect(lastRemoval).toBe(true);
      expect(await store.get('CP1')).toBeNull();
      expect(await store.ownedIdentities('A')).toEqual(['CP2']);
    });

    it('keeps a same-turn claim and removal in order across a pool of connections', async () => {
      const pooled = new PresenceStore({
        keys,
        pool: new RedisConnectionPool(driver, {
          poolSize: 3,
          driverFactory: () => createDriver({ url: server.url, logger: new MemoryLogger() }),
        }),
        presenceTtlMs: 60_000,
      });
      const identities = Array.from({ length: 60 }, (_, i) => `CP${i}`);
      const old = await Promise.all(identities.map((identity) => pooled.claim(identity, 'A', 'ocpp1.6', 1)));
      // Every identity: its old socket's removal, then a new claim on node B, in one turn.
      const outcomes = await Promise.all(
        old.flatMap(({ record }) => [pooled.remove(record.identity, 'A', record.epoch), pooled.claim(record.identity, 'B', 'ocpp1.6', 2)]),
      );
      try {
        for (let i = 0; i < identities.length; i++) {
          expect(outcomes[2 * i]).toBe(true);
          expect(await pooled.get(identities[i])).toEqual((outcomes[2 * i + 1] as { record: unknown }).record);
        }
        expect(await pooled.ownedIdentities('A')).toEqual([]);
        expect((await pooled.ownedIdentities('B')).sort()).toEqual([...identities].sort());
      } finally {
        await pooled['pool'].close();
      }
    });

    it('fails a claim with a bad identity alone, not the claims made in the same tick', async () => {
      const bad = store.claim('bad{tag}', 'A', 'ocpp1.6', 1);
      const good = store.claim('CP1', 'A', 'ocpp1.6', 1);
      await expect(bad).rejects.toMatchObject({ code: 'OCPP_INVALID_KEY_PART' });
      expect((await good).record.nodeId).toBe('A');
    });

    it('reads many entries in one go and lists what a node owns', async () => {
      for (let i = 0; i < 1200; i++) await store.claim(`CP${i}`, i % 2 ? 'A' : 'B', 'ocpp1.6', i);
      await store.claim('CP1', 'B', 'ocpp1.6', 1); // moved from A to B
      const batch = await store.getBatch([...Array.from({ length: 1200 }, (_, i) => `CP${i}`), 'nobody']);
      expect(batch.size).toBe(1200);
      expect(batch.get('CP1')?.nodeId).toBe('B');
      const ownedByA = await store.listOwned('A');
      expect(ownedByA).toHaveLength(599);
      expect(ownedByA.every((record) => record.nodeId === 'A')).toBe(true);
    });

    it('falls back to EVAL when the script cache was flushed (NOSCRIPT)', async () => {
      await store.claim('CP1', 'A', 'ocpp1.6', 1);
      await redis.script('FLUSH');
      expect(await redis.script('EXISTS', PRESENCE_CLAIM.sha)).toEqual([0]);
      const { record } = await store.claim('CP1', 'B', 'ocpp1.6', 2);
      expect(record.nodeId).toBe('B');
      await redis.script('FLUSH');
      const [refused] = await store.rehydrate([{ ...record, nodeId: 'A', epoch: 1 }], 'A');
      expect(refused.status).toBe('refused');
    });
  });

  describe('tokens (liveness, takeover lock)', () => {
    const client = () => driver.writer;

    it('acquires a free key, keeps it for the same token, refuses another token with its remaining TTL', async () => {
      expect(await TOKEN_ACQUIRE.run(client(), ['k'], ['t1', 5000])).toEqual([1, 0]);
      expect(await TOKEN_ACQUIRE.run(client(), ['k'], ['t1', 5000])).toEqual([1, 0]);
      const [ok, pttl] = (await TOKEN_ACQUIRE.run(client(), ['k'], ['t2', 5000])) as number[];
      expect(ok).toBe(0);
      expect(pttl).toBeGreaterThan(0);
    });

    it('refreshes and releases only with the right token', async () => {
      await TOKEN_ACQUIRE.run(client(), ['k'], ['t1', 5000]);
      expect(await TOKEN_REFRESH.run(client(), ['k'], ['t2', 5000])).toBe(-1);
      expect(await TOKEN_RELEASE.run(client(), ['k'], ['t2'])).toBe(0);
      expect(await TOKEN_REFRESH.run(client(), ['k'], ['t1', 5000])).toBe(1);
      expect(await TOKEN_RELEASE.run(client(), ['k'], ['t1'])).toBe(1);
      expect(await TOKEN_REFRESH.run(client(), ['k'], ['t1', 5000])).toBe(0);
    });

    it('the heartbeat extends the node inbox, replies stream, owned index and packed count with the liveness key, and writes its inbox cap', async () => {
      const nodeKeys = [...keys.nodeKeys('A'), keys.holder('A'), keys.inboxPacked('A')];
      await TOKEN_ACQUIRE.run(client(), [keys.alive('A')], ['t', 5000]);
      await redis.xadd(keys.stream('A'), '*', 'm', '{}');
      await redis.xadd(keys.replies('A'), '*', 'm', '{}');
      await redis.sadd(keys.owned('A'), 'CP1');
      expect(await LIVENESS_REFRESH.run(client(), nodeKeys, ['t', 5000, 60_000, 70_000, 42, 80_000])).toBe(1);
      expect(await redis.get(keys.inboxCap('A'))).toBe('42');
      expect(await redis.pttl(keys.inboxCap('A'))).toBeGreaterThan(50_000);
      expect(await redis.pttl(keys.stream('A'))).toBeGreaterThan(50_000);
      expect(await redis.pttl(keys.replies('A'))).toBeGreaterThan(50_000);
      expect(await redis.pttl(keys.owned('A'))).toBeGreaterThan(60_000);
      expect(await redis.get(keys.holder('A'))).toBe('t');
      expect(await redis.pttl(keys.holder('A'))).toBeGreaterThan(70_000);
      // The packed count exists from the first beat (0), and keeps what appends counted.
      expect(await redis.get(keys.inboxPacked('A'))).toBe('0');
      expect(await redis.pttl(keys.inboxPacked('A'))).toBeGreaterThan(50_000);
      await redis.set(keys.inboxPacked('A'), 7);
      expect(await LIVENESS_REFRESH.run(client(), nodeKeys, ['t', 5000, 60_000, 70_000, 42, 80_000])).toBe(1);
      expect(await redis.get(keys.inboxPacked('A'))).toBe('7');
      expect(await redis.pttl(keys.inboxPacked('A'))).toBeGreaterThan(50_000);
      expect(await LIVENESS_REFRESH.run(client(), nodeKeys, ['other', 5000, 1, 1, 1, 1])).toBe(-1);
    });

    it('takes a lapsed lease back only when no survivor marked the node taken over meanwhile', async () => {
      const fencing = [keys.alive('F'), keys.holder('F')];
      expect(await LIVENESS_ACQUIRE.run(client(), fencing, ['t1', 5000, 60_000, 'fresh'])).toEqual([LEASE_TAKEN, 0]);
      // Held: a survivor cannot mark it, another token cannot take it.
      expect(await TAKEOVER_FENCE.run(client(), fencing, ['survivor', 60_000])).toBe(0);
      const [heldElsewhere, pttl] = (await LIVENESS_ACQUIRE.run(client(), fencing, ['t2', 5000, 60_000, 'fresh'])) as number[];
      expect(heldElsewhere).toBe(LEASE_HELD_ELSEWHERE);
      expect(pttl).toBeGreaterThan(0);
      // Lapsed (a Redis stall): taken back under the same token.
      await redis.del(keys.alive('F'));
      expect(await LIVENESS_ACQUIRE.run(client(), fencing, ['t1', 5000, 60_000, 'resume'])).toEqual([LEASE_RESUMED, 0]);
      // Lapsed and taken over: the old token learns it, a fresh incarnation gets in.
      await redis.del(keys.alive('F'));
      expect(await TAKEOVER_FENCE.run(client(), fencing, ['survivor', 60_000])).toBe(1);
      expect(await LIVENESS_ACQUIRE.run(client(), fencing, ['t1', 5000, 60_000, 'resume'])).toEqual([LEASE_TAKEN_OVER, 0]);
      expect(await redis.exists(keys.alive('F'))).toBe(0);
      expect(await LIVENESS_ACQUIRE.run(client(), fencing, ['t3', 5000, 60_000, 'fresh'])).toEqual([LEASE_TAKEN, 0]);
      expect(await redis.get(keys.holder('F'))).toBe('t3');
      // Redis lost everything (restart without persistence): nobody took it over, so it resumes.
      await redis.del(keys.alive('F'), keys.holder('F'));
      expect(await LIVENESS_ACQUIRE.run(client(), fencing, ['t3', 5000, 60_000, 'resume'])).toEqual([LEASE_RESUMED, 0]);
      // A clean leave removes both, only for the holder.
      expect(await LIVENESS_RELEASE.run(client(), fencing, ['t1'])).toBe(0);
      expect(await LIVENESS_RELEASE.run(client(), fencing, ['t3'])).toBe(1);
      expect(await redis.exists(keys.alive('F'), keys.holder('F'))).toBe(0);
    });

    it('deletes a dead node only when it is still dead and nothing is left unread in its inbox', async () => {
      const nodeKeys = keys.cleanupKeys('A');
      await redis.set(keys.inboxCap('A'), 100);
      await redis.set(keys.inboxPacked('A'), 3);
      await redis.xgroup('CREATE', keys.stream('A'), 'inbox', '0', 'MKSTREAM');
      await redis.xadd(keys.replies('A'), '*', 'm', '{}'); // nobody is left to read it
      await redis.xadd(keys.stream('A'), '*', 'm', '{}');
      await redis.set(keys.alive('A'), 'token');
      expect(await NODE_CLEANUP.run(client(), nodeKeys, ['inbox'])).toBe(0); // alive
      await redis.del(keys.alive('A'));
      expect(await NODE_CLEANUP.run(client(), nodeKeys, ['inbox'])).toBe(-1); // undelivered
      const read = (await redis.xreadgroup('GROUP', 'inbox', 'A', 'COUNT', 10, 'STREAMS', keys.stream('A'), '>')) as Array<
        [string, Array<[string, string[]]>]
      >;
      expect(await NODE_CLEANUP.run(client(), nodeKeys, ['inbox'])).toBe(-1); // unacknowledged
      await redis.xack(keys.stream('A'), 'inbox', read[0][1][0][0]);
      expect(await NODE_CLEANUP.run(client(), nodeKeys, ['inbox'])).toBe(1);
      expect(await redis.exists(keys.stream('A'), keys.replies('A'), keys.inboxCap('A'), keys.inboxPacked('A'))).toBe(0);
    });
  });
});
