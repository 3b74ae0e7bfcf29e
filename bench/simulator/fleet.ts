import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Station, type FloodState, type StationOptions } from './station.js';
import { FleetStats, LatencyRecorder, type LatencySummary } from './stats.js';
import type { Payload } from './types.js';

export interface FleetOptions extends Omit<StationOptions, 'url' | 'identity' | 'localAddress'> {
  /** Endpoints without the identity (`ws://host:port/ocpp`); stations are spread over them round-robin. */
  urls: string[];
  count: number;
  prefix: string;
  /** Number of the first station (identity = prefix + zero-padded number). */
  startIndex: number;
  /**
   * After a lost or failed connection, try the next url (a load balancer's failover). The other
   * urls come in an order that differs from station to station, so that the stations of a node
   * that died spread evenly over the others instead of all landing on the next one.
   */
  failover?: boolean;
  /** New connections per second; 0 = all at once. */
  connectRate: number;
  /**
   * Source addresses the stations' sockets spread over round-robin (e.g. 127.0.1.2 … 127.0.1.17).
   * Tens of thousands of sockets from one address exhaust its ephemeral ports, and the kernel's
   * search for a free one then costs every connect (or bind) milliseconds of CPU: in a 50,000
   * station soak, a third of a simulator's time after a node's loss went to connect(), charged to
   * the machine the nodes share. Chargers in the field each have their own address.
   */
  localAddresses?: string[];
}

export interface FloodOptions {
  action: string;
  payload: Payload;
  warmupMs: number;
  durationMs: number;
}

/**
 * How the stations that lost their socket at or after a moment came back, one sample per station
 * (ms from that moment), so that the reports of several fleet processes can be merged.
 */
export interface RecoverySamples {
  /** Until each noticed the loss (its socket closed). */
  lostMs: number[];
  /** Until a socket opened again (stations still without one are left out). */
  reopenMs: number[];
  /** How long the opening handshake of that socket took (TCP connect to 101: the presence claim is in it). */
  handshakeMs: number[];
  /** Until a BootNotification was accepted on it. */
  bootMs: number[];
  /** Connection attempts each needed (1 = the first one after the loss worked). */
  attempts: number[];
  /** Why attempts failed, by message (addresses left out). */
  failures: Record<string, number>;
}

export interface FloodResult {
  action: string;
  stations: number;
  replies: number;
  failures: number;
  durationMs: number;
  callsPerSecond: number;
  latencyMs: LatencySummary;
}

/** Identities SIM00001, SIM00002, ... (at least five digits so they sort). */
export function fleetIdentities(prefix: string, startIndex: number, count: number): string[] {
  const width = Math.max(5, String(startIndex + count - 1).length);
  return Array.from({ length: count }, (_, i) => `${prefix}${String(startIndex + i).padStart(width, '0')}`);
}

/**
 * The urls station `i` (whose own is `urls[i % n]`) tries after losing its own: every other url
 * once, starting at a different one for each station of that url, so that a dead url's
 * stations spread evenly over the rest.
 */
/**
 * Loopback source addresses of simulator process number `simulator` (16 of its own, 127.0.<1+simulator>.2 …
 * .17): see FleetOptions.localAddresses. Every simulator of a run gets other ones.
 */
export function loopbackSources(simulator: number, count = 16): string[] {
  return Array.from({ length: count }, (_, a) => `127.0.${1 + simulator}.${2 + a}`);
}

export function failoverOrder(urls: readonly string[], i: number): string[] {
  const n = urls.length;
  const others = Array.from({ length: n - 1 }, (_, k) => urls[(i + k + 1) % n]);
  if (others.length === 0) return [];
  const shift = Math.floor(i / n) % others.length;
  return [...others.slice(shift), ...others.slice(0, shift)];
}

export function endpointFor(url: string, identity: string): string {
  return `${url.replace(/\/+$/, '')}/${encodeURIComponent(identity)}`;
}

/** N stations in one process, started at a chosen rate, with shared counters. */
export class Fleet {
  readonly stats = new FleetStats();
  readonly stations: Station[];
  private readonly sweepTimer: ReturnType<typeof setInterval>;
  private startTimer: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;

  constructor(private readonly options: FleetOptions) {
    if (options.urls.length === 0) throw new Error('at least one url is needed');
    this.stations = fleetIdentities(options.prefix, options.startIndex, options.count).map(
      (identity, i) =>
        new Station(
          {
            ...options,
            identity,
            url: endpointFor(options.urls[i % options.urls.length], identity),
            localAddress: options.localAddresses?.length ? options.localAddresses[i % options.localAddresses.length] : undefined,
            fallbackUrls: options.failover ? failoverOrder(options.urls, i).map((url) => endpointFor(url, identity)) : undefined,
          },
          this.stats,
        ),
    );
    this.sweepTimer = setInterval(() => {
      const now = performance.now();
      for (const station of this.stations) station.checkTimeout(now);
    }, 1000);
  }

  get identities(): string[] {
    return this.stations.map((station) => station.identity);
  }

  /** Starts connecting; resolves once every station was started (not connected). */
  start(): Promise<void> {
    const stations = this.stations;
    return new Promise((resolve) => {
      let next = 0;
      if (this.options.connectRate <= 0) {
        // "All at once", in slices so the event loop keeps answering while 10,000 sockets open.
        const slice = (): void => {
          if (this.stopped) return resolve();
          const end = Math.min(stations.length, next + 500);
          for (; next < end; next++) stations[next].start();
          if (next < stations.length) this.startTimer = setTimeout(slice, 0);
          else resolve();
        };
        slice();
        return;
      }
      const startedAt = performance.now();
      const tick = (): void => {
        if (this.stopped) return resolve();
        const due = Math.min(stations.length, Math.floor(((performance.now() - startedAt) / 1000) * this.options.connectRate) + 1);
        for (; next < due; next++) stations[next].start();
        if (next < stations.length) this.startTimer = setTimeout(tick, 10);
        else resolve();
      };
      tick();
    });
  }

  /** The stations that lost their socket at or after `sinceEpochMs`, and how they came back. */
  recovery(sinceEpochMs: number): RecoverySamples {
    const samples: RecoverySamples = { lostMs: [], reopenMs: [], handshakeMs: [], bootMs: [], attempts: [], failures: {} };
    for (const station of this.stations) {
      const recovery = station.recovery;
      if (recovery === null || recovery.lostAt < sinceEpochMs) continue;
      samples.lostMs.push(recovery.lostAt - sinceEpochMs);
      if (recovery.openedAt !== null) samples.reopenMs.push(recovery.openedAt - sinceEpochMs);
      if (recovery.handshakeMs !== null) samples.handshakeMs.push(recovery.handshakeMs);
      if (recovery.bootedAt !== null) samples.bootMs.push(recovery.bootedAt - sinceEpochMs);
      samples.attempts.push(recovery.attempts);
      for (const failure of recovery.failures) {
        const kind = failure.replace(/\d+\.\d+\.\d+\.\d+:\d+/g, 'host:port');
        samples.failures[kind] = (samples.failures[kind] ?? 0) + 1;
      }
    }
    return samples;
  }

  /** Every station sends `action` back to back (one in flight each); measures after the warm-up. */
  async flood(options: FloodOptions): Promise<FloodResult> {
    const recorder = new LatencyRecorder();
    let measuring = false;
    let failures = 0;
    const state: FloodState = {
      action: options.action,
      payload: options.payload,
      running: true,
      onReply: (latencyMs) => {
        if (measuring) recorder.record(latencyMs);
      },
      onFailure: () => {
        if (measuring) failures++;
      },
    };
    for (const station of this.stations) station.startFlood(state);
    await sleep(options.warmupMs);
    measuring = true;
    const startedAt = performance.now();
    await sleep(options.durationMs);
    measuring = false;
    const durationMs = performance.now() - startedAt;
    state.running = false;
    return {
      action: options.action,
      stations: this.stats.booted,
      replies: recorder.count,
      failures,
      durationMs,
      callsPerSecond: (recorder.count / durationMs) * 1000,
      latencyMs: recorder.summary(),
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.startTimer ?? undefined);
    clearInterval(this.sweepTimer);
    await Promise.all(this.stations.map((station) => station.stop()));
  }
}
