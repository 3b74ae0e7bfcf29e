import { parseArgs } from 'node:util';
import type { FleetOptions } from './fleet.js';
import { PROTOCOLS, type OcppProtocol } from './types.js';

export interface CliOptions extends FleetOptions {
  /** Stop by itself after this many seconds; 0 = until Ctrl-C. */
  durationSeconds: number;
  quiet: boolean;
  json: boolean;
}

export const USAGE = `Station simulator: N OCPP-J charge points on raw WebSockets.

  npm run simulate -- --url ws://localhost:3000/ocpp --count 100 --protocol ocpp1.6

  --url URL                 CSMS endpoint without the identity (repeat to spread stations round-robin)
  --count N                 stations (default 1)
  --protocol P              ocpp1.6 | ocpp2.0.1 | ocpp2.1 (default ocpp1.6)
  --prefix TEXT             identity prefix (default SIM: SIM00001, SIM00002, ...)
  --start-index N           number of the first station (default 1)
  --password TEXT           Basic-auth password (user = identity; security profile 1)
  --heartbeat SECONDS       heartbeat interval (default: the interval the CSMS gives at boot)
  --tx-per-minute X         mean transaction starts per minute per station (default 0 = none)
  --tx-duration SECONDS     length of a transaction (default 120)
  --meter-values-per-minute X  meter values per minute during a transaction (default 1)
  --connectors N            connectors (2.x: EVSEs) per station (default 1)
  --connect-rate N          new connections per second (default 0 = all at once)
  --call-timeout SECONDS    timeout of the station's own calls (default 30)
  --backoff-min SECONDS     first reconnect wait, doubled per failure (default 1)
  --backoff-max SECONDS     cap of the reconnect wait (default 60)
  --backoff-jitter SECONDS  random extra wait, 0..this (default 2)
  --deflate auto|on|off     offer permessage-deflate (default auto: on for 2.x, off for 1.6)
  --duration SECONDS        stop after this long (default 0 = until Ctrl-C)
  --quiet                   no progress line
  --json                    final statistics as JSON on stdout
  --help
`;

export class UsageError extends Error {}

function number(name: string, raw: string | undefined, fallback: number, { min = 0, integer = false } = {}): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min || (integer && !Number.isInteger(value))) {
    throw new UsageError(`--${name} must be ${integer ? 'an integer' : 'a number'} >= ${min}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

/** Parses and validates the command line once; the error names the bad option. */
export function parseCli(argv: string[]): CliOptions | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        url: { type: 'string', multiple: true },
        count: { type: 'string' },
        protocol: { type: 'string' },
        prefix: { type: 'string' },
        'start-index': { type: 'string' },
        password: { type: 'string' },
        heartbeat: { type: 'string' },
        'tx-per-minute': { type: 'string' },
        'tx-duration': { type: 'string' },
        'meter-values-per-minute': { type: 'string' },
        connectors: { type: 'string' },
        'connect-rate': { type: 'string' },
        'call-timeout': { type: 'string' },
        'backoff-min': { type: 'string' },
        'backoff-max': { type: 'string' },
        'backoff-jitter': { type: 'string' },
        deflate: { type: 'string' },
        duration: { type: 'string' },
        quiet: { type: 'boolean' },
        json: { type: 'boolean' },
        help: { type: 'boolean' },
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const v = parsed.values;
  if (v.help) return 'help';
  const urls = v.url ?? [];
  if (urls.length === 0) throw new UsageError('--url is required (e.g. ws://localhost:3000/ocpp)');
  for (const url of urls) {
    if (!/^wss?:\/\/[^/]+/.test(url)) throw new UsageError(`--url must be a ws:// or wss:// URL, got ${JSON.stringify(url)}`);
  }
  const protocol = (v.protocol ?? 'ocpp1.6') as OcppProtocol;
  if (!PROTOCOLS.includes(protocol)) throw new UsageError(`--protocol must be one of ${PROTOCOLS.join(', ')}, got ${JSON.stringify(v.protocol)}`);
  const prefix = v.prefix ?? 'SIM';
  if (!/^[A-Za-z0-9*\-_=:+|@.]{0,40}$/.test(prefix)) {
    throw new UsageError('--prefix may hold up to 40 characters of A-Z a-z 0-9 * - _ = : + | @ .');
  }
  const deflate = v.deflate ?? 'auto';
  if (!['auto', 'on', 'off'].includes(deflate)) throw new UsageError(`--deflate must be auto, on or off, got ${JSON.stringify(deflate)}`);
  const backoffMin = number('backoff-min', v['backoff-min'], 1, { min: 0.01 });
  const backoffMax = number('backoff-max', v['backoff-max'], 60, { min: 0.01 });
  if (backoffMax < backoffMin) throw new UsageError('--backoff-max must be >= --backoff-min');
  const heartbeat = v.heartbeat === undefined ? undefined : number('heartbeat', v.heartbeat, 0, { min: 1 });
  return {
    urls,
    count: number('count', v.count, 1, { min: 1, integer: true }),
    protocol,
    prefix,
    startIndex: number('start-index', v['start-index'], 1, { min: 0, integer: true }),
    password: v.password,
    heartbeatSeconds: heartbeat,
    txPerMinute: number('tx-per-minute', v['tx-per-minute'], 0),
    txDurationSeconds: number('tx-duration', v['tx-duration'], 120, { min: 1 }),
    meterValuesPerMinute: number('meter-values-per-minute', v['meter-values-per-minute'], 1),
    connectors: number('connectors', v.connectors, 1, { min: 1, integer: true }),
    connectRate: number('connect-rate', v['connect-rate'], 0),
    callTimeoutMs: number('call-timeout', v['call-timeout'], 30, { min: 0.1 }) * 1000,
    backoff: {
      minMs: backoffMin * 1000,
      maxMs: backoffMax * 1000,
      jitterMs: number('backoff-jitter', v['backoff-jitter'], 2) * 1000,
    },
    deflate: deflate === 'on' || (deflate === 'auto' && protocol !== 'ocpp1.6'),
    durationSeconds: number('duration', v.duration, 0),
    quiet: v.quiet ?? false,
    json: v.json ?? false,
  };
}
