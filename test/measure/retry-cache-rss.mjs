/**
 * RSS of one sample node (in memory, no Redis) before and after ten OCPP 2.1 chargers send
 * 30–60 KB DataTransfers within the rate limit: the flood that grew the old retry cache to
 * hundreds of MB. A measurement, not a test:
 *
 *   npm run build:sample && node test/measure/retry-cache-rss.mjs [calls per socket] [path to dist/sample/main.js]
 */
/* global process, setTimeout, clearTimeout, console, URL */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

const SOCKETS = 10;
const CALLS_PER_SOCKET = Number(process.argv[2] ?? 1_000);
const IN_FLIGHT_PER_SOCKET = 8;
const sampleMain = process.argv[3] ?? fileURLToPath(new URL('../../dist/sample/main.js', import.meta.url));

const rssMb = (pid) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;

function startNode() {
  const child = spawn(process.execPath, [sampleMain], {
    env: { ...process.env, NODE_OPTIONS: '', PORT: '0', OCPP_NODE_ID: 'rss-probe', REDIS_URL: '', REDIS_CLUSTER_NODES: '' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the sample did not start within 30 s')), 30_000);
    child.stdout.on('data', (chunk) => {
      const match = /listening on http:\/\/localhost:(\d+)/.exec(chunk.toString());
      if (match) {
        clearTimeout(timer);
        resolve({ child, port: Number(match[1]) });
      }
    });
    child.once('exit', (code) => reject(new Error(`the sample exited with ${code}`)));
  });
}

function connect(port, identity) {
  const socket = new WebSocket(`ws://127.0.0.1:${port}/ocpp/${identity}`, 'ocpp2.1');
  return new Promise((resolve, reject) => {
    socket.once('open', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Sends `count` DataTransfers of 30–60 KB, a few in flight at a time, and waits for every answer. */
function flood(socket, identity, count) {
  return new Promise((resolve, reject) => {
    let sent = 0;
    let answered = 0;
    const sendNext = () => {
      const n = sent++;
      const size = 30_000 + ((n * 7_919) % 30_000);
      socket.send(JSON.stringify([2, `${identity}-${n}`, 'DataTransfer', { vendorId: 'acme', data: `${n}-`.padEnd(size, 'x') }]));
    };
    socket.on('message', (data) => {
      const frame = JSON.parse(data.toString());
      if (frame[0] !== 3) return reject(new Error(`unexpected answer ${data.toString().slice(0, 200)}`));
      if (++answered === count) return resolve();
      if (sent < count) sendNext();
    });
    for (let i = 0; i < Math.min(IN_FLIGHT_PER_SOCKET, count); i++) sendNext();
  });
}

const { child, port } = await startNode();
try {
  const identities = Array.from({ length: SOCKETS }, (_, i) => `RSS-${i}`);
  const sockets = await Promise.all(identities.map((identity) => connect(port, identity)));
  const before = rssMb(child.pid);
  const startedAt = Date.now();
  await Promise.all(sockets.map((socket, i) => flood(socket, identities[i], CALLS_PER_SOCKET)));
  const after = rssMb(child.pid);
  console.log(
    `${SOCKETS} sockets x ${CALLS_PER_SOCKET} DataTransfers of 30-60 KB in ${((Date.now() - startedAt) / 1000).toFixed(1)} s: ` +
      `RSS ${before.toFixed(0)} MB before, ${after.toFixed(0)} MB after`,
  );
  for (const socket of sockets) socket.terminate();
} finally {
  child.kill('SIGTERM');
}
