import { performance } from 'node:perf_hooks';

/** How often the loop is sampled (a timer; costs nothing measurable). */
const TICK_MS = 20;
/** How long a lateness is remembered: the answer covers the last 0.5–1 s. */
const WINDOW_MS = 500;

/**
 * How late this process's event loop runs: the largest lateness of a 20 ms timer over the last
 * window, the current one, and the tick overdue right now. A reconnect storm can queue so much
 * handshake work that the loop answers seconds late; then the node's own lease refresh is late
 * too, and a survivor that is not overloaded takes it over (and its sockets with it). Admission
 * reads this to refuse new upgrades while the loop is behind, before the lease is at risk.
 * (Not perf_hooks' monitorEventLoopDelay: a block right after its reset() is not recorded.)
 */
export class EventLoopDelay {
  private timer: NodeJS.Timeout | null = null;
  private lastTickAt = 0;
  private windowStartedAt = 0;
  private windowMaxMs = 0;
  private previousWindowMaxMs = 0;

  start(): void {
    if (this.timer) return;
    this.lastTickAt = this.windowStartedAt = performance.now();
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.windowMaxMs = this.previousWindowMaxMs = 0;
  }

  /** The largest lateness over the last window and the current one, in ms (0 when stopped). */
  recentMaxMs(): number {
    if (!this.timer) return 0;
    const overdueNowMs = performance.now() - this.lastTickAt - TICK_MS;
    return Math.max(this.previousWindowMaxMs, this.windowMaxMs, overdueNowMs, 0);
  }

  private tick(): void {
    const now = performance.now();
    this.windowMaxMs = Math.max(this.windowMaxMs, now - this.lastTickAt - TICK_MS);
    this.lastTickAt = now;
    if (now - this.windowStartedAt >= WINDOW_MS) {
      this.previousWindowMaxMs = this.windowMaxMs;
      this.windowMaxMs = 0;
      this.windowStartedAt = now;
    }
  }
}
