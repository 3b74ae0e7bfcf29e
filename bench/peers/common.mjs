// Shared by the peer apps (plain ESM so they resolve their packages from bench/node_modules).
// The IPC contract and the call loop are ours, from the build `npm run bench` makes before it
// starts any app (dist/bench/apps), so every implementation is driven and measured alike.
import { createServer } from 'node:http';
import process from 'node:process';
import { setImmediate, setTimeout } from 'node:timers';
import { runCalls as runCallsOf } from '../../dist/bench/apps/call-runner.js';

export { announceReady, measureMemory, serveIpc } from '../../dist/bench/apps/ipc.js';

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

/** The answers every bench CSMS gives (ours gives the sample's, sample/station.handlers.ts: the same for what the stations send). */
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

/**
 * bench/apps/call-runner.ts's loop, for a peer whose send resolves undefined when it got no reply
 * (ocpp-ws-io's safeSend): that counts as an error ("NoReply"), not as a latency.
 */
export function runCalls(send, options) {
  return runCallsOf(async (identity) => {
    const reply = await send(identity);
    if (reply === undefined) throw Object.assign(new Error('no reply'), { code: 'NoReply' });
    return reply;
  }, options);
}

export async function stopAndExit(close) {
  setTimeout(() => process.exit(0), 5000).unref();
  await close();
  setImmediate(() => process.exit(0));
  return true;
}
