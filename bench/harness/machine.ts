import { existsSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Other work on the machine (a test suite, another bench) skews the numbers. Between two
 * measurements none of the bench's processes run, so whatever CPU is busy then is foreign.
 */
function cpuTimes(): { busy: number; total: number } | null {
  if (!existsSync('/proc/stat')) return null;
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((sum, value) => sum + value, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  return { busy: total - idle, total };
}

/** Share of all cores busy during `sampleMs`, in percent (null where /proc/stat is missing). */
export async function busyPercent(sampleMs = 1000): Promise<number | null> {
  const before = cpuTimes();
  await sleep(sampleMs);
  const after = cpuTimes();
  if (!before || !after || after.total === before.total) return null;
  return ((after.busy - before.busy) / (after.total - before.total)) * 100;
}

/**
 * Waits (up to `maxWaitMs`) for the machine to be quiet: at most `thresholdPercent` of the CPU
 * busy with other work. Resolves with the last reading, so the report can say how busy it was.
 */
export async function waitForQuiet(thresholdPercent = 15, maxWaitMs = 30_000): Promise<{ busyPercent: number | null; waitedMs: number }> {
  const startedAt = Date.now();
  for (;;) {
    const busy = await busyPercent(1000);
    if (busy === null || busy <= thresholdPercent || Date.now() - startedAt >= maxWaitMs) {
      return { busyPercent: busy, waitedMs: Date.now() - startedAt };
    }
  }
}

/** utime + stime of one process (all its threads), in clock ticks; null once it is gone. */
function processTicks(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "pid (comm)": state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return null;
  }
}

/** Clock ticks per second of /proc (USER_HZ: 100 on Linux). */
const TICKS_PER_SECOND = 100;

/**
 * CPU time of a few processes over a measurement, in µs (/proc tick resolution, 10 ms). Unlike
 * throughput, CPU per call hardly moves when other work shares the machine.
 */
export class ProcessCpu<K extends string> {
  private readonly start: Map<K, number | null>;

  constructor(private readonly pids: Record<K, number | undefined>) {
    this.start = new Map(Object.entries(pids).map(([name, pid]) => [name as K, pid === undefined ? null : processTicks(pid as number)]));
  }

  /** µs each process used since construction (null: unknown). */
  stop(): Record<K, number | null> {
    const used = {} as Record<K, number | null>;
    for (const [name, pid] of Object.entries(this.pids) as Array<[K, number | undefined]>) {
      const from = this.start.get(name);
      const to = pid === undefined ? null : processTicks(pid);
      used[name] = from === null || from === undefined || to === null ? null : ((to - from) * 1e6) / TICKS_PER_SECOND;
    }
    return used;
  }
}

/**
 * CPU used during a measurement by processes that are not the bench's: all busy CPU time minus
 * what the bench's own processes (the driver, its children, their redis-server) used.
 */
export class CpuWatch {
  private readonly startTotal: { busy: number; total: number } | null;
  private readonly startOwn: Map<number, number>;

  constructor(private readonly pids: number[]) {
    this.startTotal = cpuTimes();
    this.startOwn = new Map(pids.map((pid) => [pid, processTicks(pid) ?? 0]));
  }

  /** Percent of all cores: foreign (other work) and own (the bench). */
  stop(): { foreignPercent: number | null; ownPercent: number | null } {
    const end = cpuTimes();
    if (!this.startTotal || !end || end.total === this.startTotal.total) return { foreignPercent: null, ownPercent: null };
    let own = 0;
    for (const pid of this.pids) {
      const ticks = processTicks(pid);
      if (ticks !== null) own += ticks - (this.startOwn.get(pid) ?? 0);
    }
    const total = end.total - this.startTotal.total;
    const busy = end.busy - this.startTotal.busy;
    return {
      foreignPercent: Math.max(0, ((busy - own) / total) * 100),
      ownPercent: (own / total) * 100,
    };
  }
}
