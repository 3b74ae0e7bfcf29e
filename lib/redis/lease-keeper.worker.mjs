// The Redis lease keeper's thread (see lease-keeper.ts): the node's heartbeat script under its
// token, on a connection of its own. Plain JavaScript (see lease-keeper-loop.mjs).
import { workerData } from 'node:worker_threads';
import { Cluster, Redis } from 'ioredis';
import { runLeaseKeeper } from '../cluster/lease-keeper-loop.mjs';

const { connection, script, keys, args } = workerData;

const client =
  connection.kind === 'cluster' ? new Cluster(connection.nodes, connection.options) : new Redis({ ...connection.options, lazyConnect: false });
client.on('error', () => undefined);

runLeaseKeeper({
  // 1: the key held this token when Redis ran the script (the script never recreates a lapsed key).
  renew: async (token) => Number(await client.eval(script, keys.length, ...keys, token, ...args)) === 1,
  close: () => client.disconnect(),
});
