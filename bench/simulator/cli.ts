import { performance } from 'node:perf_hooks';
import { Fleet } from './fleet.js';
import { USAGE, UsageError, parseCli, type CliOptions } from './options.js';

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

function progressLine(options: CliOptions, fleet: Fleet, elapsedS: number, outPerS: number, inPerS: number): string {
  const s = fleet.stats;
  return (
    `${elapsedS.toFixed(0).padStart(4)}s  connected ${fmt(s.connected)}/${fmt(options.count)}  booted ${fmt(s.booted)}  ` +
    `calls out ${fmt(outPerS)}/s in ${fmt(inPerS)}/s  errors ${fmt(s.errors)}  reconnects ${fmt(s.reconnects)}`
  );
}

async function main(): Promise<void> {
  let options: CliOptions | 'help';
  try {
    options = parseCli(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`simulate: ${error.message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (options === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  const opts = options;
  const fleet = new Fleet(opts);
  const startedAt = performance.now();
  const tty = process.stderr.isTTY === true;
  let last = { at: startedAt, out: 0, in: 0 };
  let lastPrinted = 0;

  process.stderr.write(
    `simulating ${fmt(opts.count)} ${opts.protocol} stations ${fleet.identities[0]}..${fleet.identities.at(-1)} on ${opts.urls.join(', ')}` +
      ` (Ctrl-C stops)\n`,
  );
  const progress = setInterval(() => {
    const now = performance.now();
    const seconds = (now - last.at) / 1000;
    const outPerS = (fleet.stats.callsOut - last.out) / seconds;
    const inPerS = (fleet.stats.callsIn - last.in) / seconds;
    last = { at: now, out: fleet.stats.callsOut, in: fleet.stats.callsIn };
    if (opts.quiet) return;
    const line = progressLine(opts, fleet, (now - startedAt) / 1000, outPerS, inPerS);
    if (tty) process.stderr.write(`\r\x1b[K${line}`);
    else if (now - lastPrinted >= 5000) {
      process.stderr.write(`${line}\n`);
      lastPrinted = now;
    }
  }, 1000);

  let stopping = false;
  const stop = async (why: string): Promise<void> => {
    if (stopping) {
      process.stderr.write('\nforced exit\n');
      process.exit(130);
    }
    stopping = true;
    clearInterval(progress);
    process.stderr.write(`${tty ? '\n' : ''}${why}: closing ${fmt(fleet.stats.connected)} sockets...\n`);
    await fleet.stop();
    const s = fleet.stats;
    const seconds = (performance.now() - startedAt) / 1000;
    if (opts.json) {
      process.stdout.write(`${JSON.stringify({ seconds, ...s.snapshot() }, null, 2)}\n`);
    } else {
      process.stdout.write(
        `ran ${seconds.toFixed(1)} s: ${fmt(s.opens)} connections (${fmt(s.reconnects)} reconnects), ` +
          `${fmt(s.callsOut)} calls answered by the CSMS, ${fmt(s.callsIn)} CSMS commands answered, ${fmt(s.errors)} errors\n`,
      );
      for (const [kind, count] of s.topErrors()) process.stdout.write(`  ${fmt(count).padStart(8)}  ${kind}\n`);
    }
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('interrupted'));
  process.on('SIGTERM', () => void stop('terminated'));
  if (opts.durationSeconds > 0) setTimeout(() => void stop(`${opts.durationSeconds} s elapsed`), opts.durationSeconds * 1000);

  await fleet.start();
}

main().catch((error) => {
  process.stderr.write(`simulate: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
