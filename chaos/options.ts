import { randomInt } from 'node:crypto';
import { CLUSTER_FAULTS, NATS_CLUSTER_FAULTS, NATS_SINGLE_FAULTS, STANDALONE_FAULTS } from './faults.js';
import type { FaultType } from './records.js';

export interface ChaosOptions {
  seconds: number;
  /** The cluster transport the sample nodes run on. */
  transport: 'redis' | 'nats';
  redis: 'standalone' | 'cluster';
  /** With `--transport nats`: one nats-server, or a 3-server JetStream cluster with 3 replicas. */
  nats: 'single' | 'cluster';
  seed: number;
  chargers: number;
  callsPerSecond: number;
  nodeTtlMs: number;
  toleranceMs: number;
  rssLimitMb: number;
  selfTest: boolean;
  /** Only these fault types (default: every type of the transport's mode). */
  faults: FaultType[] | null;
  /** Re-check the records.json of an earlier run instead of running. */
  analyzeFile: string | null;
}

const USAGE = `usage: npm run chaos -- [--seconds 90] [--transport redis|nats] [--redis standalone|cluster] [--nats single|cluster]
       [--seed N] [--chargers 300]
       [--rate 20] [--ttl-ms 2000] [--tolerance-ms 100] [--rss-limit-mb 400] [--faults maxmemory,debug-sleep,...]
       [--self-test] [--analyze records.json]`;

export class UsageError extends Error {
  readonly code = 'CHAOS_USAGE';
  constructor(message: string) {
    super(`${message}\n${USAGE}`);
  }
}

function positiveInteger(flag: string, raw: string | undefined): number {
  const value = Number(raw);
  if (raw === undefined || !/^\d+$/.test(raw) || !Number.isSafeInteger(value) || value <= 0) {
    throw new UsageError(`${flag} needs a positive integer, got ${raw ?? 'nothing'}`);
  }
  return value;
}

export function parseOptions(argv: string[]): ChaosOptions {
  const options: ChaosOptions = {
    seconds: 90,
    transport: 'redis',
    redis: 'standalone',
    nats: 'single',
    seed: randomInt(1, 2 ** 31 - 1),
    chargers: 300,
    callsPerSecond: 20,
    nodeTtlMs: 2_000,
    toleranceMs: 100,
    rssLimitMb: 400,
    selfTest: false,
    faults: null,
    analyzeFile: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => argv[++i];
    switch (flag) {
      case '--seconds': options.seconds = positiveInteger(flag, value()); break;
      case '--seed': options.seed = positiveInteger(flag, value()); break;
      case '--chargers': options.chargers = positiveInteger(flag, value()); break;
      case '--rate': options.callsPerSecond = positiveInteger(flag, value()); break;
      case '--ttl-ms': options.nodeTtlMs = positiveInteger(flag, value()); break;
      case '--tolerance-ms': options.toleranceMs = positiveInteger(flag, value()); break;
      case '--rss-limit-mb': options.rssLimitMb = positiveInteger(flag, value()); break;
      case '--self-test': options.selfTest = true; break;
      case '--faults': options.faults = faultTypes(value()); break;
      case '--analyze': {
        const file = value();
        if (!file) throw new UsageError('--analyze needs the path of a records.json');
        options.analyzeFile = file;
        break;
      }
      case '--redis': options.redis = oneOf(flag, value(), ['standalone', 'cluster'] as const); break;
      case '--transport': options.transport = oneOf(flag, value(), ['redis', 'nats'] as const); break;
      case '--nats': options.nats = oneOf(flag, value(), ['single', 'cluster'] as const); break;
      default:
        throw new UsageError(`unknown argument ${flag}`);
    }
  }
  const known = faultsOf(options);
  const unknown = options.faults?.filter((type) => !known.includes(type)) ?? [];
  if (unknown.length > 0) throw new UsageError(`--faults: ${unknown.join(', ')} not injected with ${modeOf(options)} (known: ${known.join(', ')})`);
  return options;
}

/** Every fault type the run's transport and mode can take. */
export function faultsOf(options: Pick<ChaosOptions, 'transport' | 'redis' | 'nats'>): FaultType[] {
  if (options.transport === 'nats') return options.nats === 'cluster' ? NATS_CLUSTER_FAULTS : NATS_SINGLE_FAULTS;
  return options.redis === 'cluster' ? CLUSTER_FAULTS : STANDALONE_FAULTS;
}

function modeOf(options: Pick<ChaosOptions, 'transport' | 'redis' | 'nats'>): string {
  return options.transport === 'nats' ? `--transport nats --nats ${options.nats}` : `--redis ${options.redis}`;
}

function oneOf<T extends string>(flag: string, raw: string | undefined, allowed: readonly T[]): T {
  if (!allowed.includes(raw as T)) throw new UsageError(`${flag} is ${allowed.join(' or ')}, got ${raw ?? 'nothing'}`);
  return raw as T;
}

function faultTypes(raw: string | undefined): FaultType[] {
  const types = (raw ?? '').split(',').filter(Boolean) as FaultType[];
  if (types.length === 0) throw new UsageError('--faults needs a comma-separated list of fault types');
  return types;
}
