import { performance } from 'node:perf_hooks';

/** How often the loop is sampled (a timer; costs nothing measurable). */
const TICK_MS = 20;

/**
 * How late this process's event loop runs, sustained: the lateness of two intervals in a row of a
 * 20 ms timer (the last two ticks, or the last tick and the one overdue right now). A reconnect
 * storm queues so much handshake work that every turn of the loop takes seconds; then the node's
 * own lease refresh is late too, and a survivor that is not overloaded takes it over (and its
 * sockets with it). Admission reads this to refuse new upgrades while the loop is behind, before
 * the lease is at risk. One long stall alone (a SIGSTOP or VM pause, start-up work, a GC) is not
 * overload: the loop is on time again right after it, so it counts as one late interval only.
 */
export class EventLoopDelay {
  private timer: NodeJS.Timeout | null = null;
  private lastTickAt = 0;
  private latestLatenessMs = 0;
  private previousLatenessMs = 0;

  start(): void {
    if (this.timer) return;
    this.lastTickAt = performance.now();
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.latestLatenessMs = this.previousLatenessMs = 0;
  }

  /** The lateness of two intervals in a row, in ms (0 when stopped). */
  sustainedMs(): number {
    if (!this.timer) return 0;
    const overdueNowMs = performance.now() - this.lastTickAt - TICK_MS;
    return Math.max(0, Math.min(this.previousLatenessMs, this.latestLatenessMs), Math.min(this.latestLatenessMs, overdueNowMs));
  }

  private tick(): void {
    const now = performance.now();
    this.previousLatenessMs = this.latestLatenessMs;
    this.latestLatenessMs = now - this.lastTickAt - TICK_MS;
    this.lastTickAt = now;
  }
}
