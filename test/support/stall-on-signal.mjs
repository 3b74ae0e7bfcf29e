// Loaded into a sample node with `node --import`: SIGUSR2 keeps the main thread busy for STALL_MS
// (a synchronous loop, as an overloaded event loop or a long GC would), while the process and its
// other threads run on. SIGSTOP, by contrast, freezes every thread.
/* global process */
import { performance } from 'node:perf_hooks';

process.on('SIGUSR2', () => {
  const until = performance.now() + Number(process.env.STALL_MS);
  while (performance.now() < until) {
    // busy: no timer, no socket read, no heartbeat on this thread
  }
});
