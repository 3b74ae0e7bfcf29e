import { startRedisCluster, stopAllRedisServers, type RedisClusterHandle } from '../support/redis-server.js';

describe('scratch', () => {
  let cluster: RedisClusterHandle;
  afterAll(async () => { await cluster?.stop(); await stopAllRedisServers(); });
  it('starts 3+3 and fails over', async () => {
    let t = Date.now();
    cluster = await startRedisCluster({ masters: 3, replicas: 1 });
    console.log('started in', Date.now() - t, cluster.topology().map((n) => `${n.port} ${n.flags} ${n.masterId ?? ''} ${JSON.stringify(n.slots)}`).join('\n'));
    const m = cluster.masterOf(0);
    t = Date.now();
    const promoted = await cluster.killMaster(m);
    console.log('failover in', Date.now() - t, promoted.port);
    t = Date.now();
    await cluster.restartNode(m);
    console.log('rejoin in', Date.now() - t, cluster.topology().map((n) => `${n.port} ${n.flags} ${n.masterId ?? ''}`).join('\n'));
    t = Date.now();
    await cluster.restartAll();
    console.log('restartAll in', Date.now() - t);
    t = Date.now();
    await cluster.migrateSlots([0, 1, 2], cluster.masterOf(10000));
    console.log('migrate in', Date.now() - t, cluster.masterOf(0).port);
  }, 120_000);
});
