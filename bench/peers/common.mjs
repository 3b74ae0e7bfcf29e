// Shared by the peer apps (plain ESM so they resolve their packages from bench/node_modules).
// Same IPC contract and measurements as bench/apps/*.ts.
import { createServer } from 'node:http';
import process from 'node:process';
import { performance } from 'node:perf_hooks';
import { setImmediate, setTimeout } from 'node:timers';
import { setTimeout as sleep } from 'node:timers/promises';

export function serveIpc(handlers) {
  if (!process.send) throw new Error('this bench app runs as a child of the bench driver (IPC channel needed)');
  process.on('message', (message) => {
    const handler = handlers[message.type];
    Promise.resolve()
      .then(() => {
        if (!handler) throw new Error(`unknown request ${String(message.type)}`);
        return handler(message);
      })
      .then(
        (result) => process.send?.({ id: message.id, ok: true, result }),
        (error) => process.send?.({ id: message.id, ok: false, error: String(error?.stack ?? error) }),
      );
  });
  process.on('disconnect', () => process.exit(0));
}

export function announceReady(info) {
  process.send?.({ ready: true, ...info });
}

export async function measureMemory() {
  for (let i = 0; i < 3; i++) {
    globalThis.gc?.();
    await sleep(100);
  }
  return process.memoryUsage();
}

export const now = () => new Date().toISOString();

/**
 * An HTTP server on 127.0.0.1 with the bench's common listen backlog (BENCH_BACKLOG, as
 * bench/apps/ours-node.ts), its upgrades handed to `onUpgrade`.
 */
export function listenWithBacklog(onUpgrade) {
  const server = createServer({ noDelay: true }, (_request, response) => {
    response.statusCode = 404;
    response.end();
  });
  server.on('upgrade', onUpgrade);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1', backlog: Number(process.env.BENCH_BACKLOG ?? 511) }, () => resolve(server));
  });
}

/** The answers every bench CSMS gives (the same as bench/apps/ours-node.ts). */
export function replyFor(action, protocol) {
  switch (action) {
    case 'BootNotification':
      return { status: 'Accepted', currentTime: now(), interval: 300 };
    case 'Heartbeat':
      return { currentTime: now() };
    case 'Authorize':
      return protocol === 'ocpp1.6' ? { idTagInfo: { status: 'Accepted' } } : { idTokenInfo: { status: 'Accepted' } };
    case 'DataTransfer':
      return { status: 'Accepted' };
    default:
      return {};
  }
}

export const HANDLED_ACTIONS = ['BootNotification', 'Heartbeat', 'StatusNotification', 'Authorize', 'MeterValues', 'DataTransfer'];

function summary(values, count) {
  const sorted = values.slice(0, count).sort();
  const at = (q) => (count === 0 ? 0 : sorted[Math.min(count - 1, Math.floor(q * count))]);
  let sum = 0;
  for (let i = 0; i < count; i++) sum += sorted[i];
  return { count, mean: count ? sum / count : 0, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: count ? sorted[count - 1] : 0 };
}

async function phase(send, options, count) {
  const latencies = new Float64Array(count);
  let recorded = 0;
  let issued = 0;
  let errors = 0;
  const errorKinds = {};
  const startedAt = performance.now();
  const worker = async (index) => {
    const identity = options.identities[index % options.identities.length];
    while (issued < count) {
      issued++;
      const sentAt = performance.now();
      try {
        const reply = await send(identity);
        if (reply === undefined) throw Object.assign(new Error('no reply'), { code: 'NoReply' });
        latencies[recorded++] = performance.now() - sentAt;
      } catch (error) {
        errors++;
        const kind = String(error?.code ?? error?.name ?? error);
        errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, (_, i) => worker(i)));
  const durationMs = performance.now() - startedAt;
  return {
    calls: count,
    ok: recorded,
    errors,
    errorKinds,
    durationMs,
    callsPerSecond: (recorded / durationMs) * 1000,
    latencyMs: summary(latencies, recorded),
  };
}

/** Same loop as bench/apps/call-runner.ts: worker i targets identities[i % n]. */
export async function runCalls(send, options) {
  if (options.warmup > 0) await phase(send, options, options.warmup);
  return phase(send, options, options.total);
}

export async function stopAndExit(close) {
  setTimeout(() => process.exit(0), 5000).unref();
  await close();
  setImmediate(() => process.exit(0));
  return true;
}
