import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';

/**
 * The bench driver talks to its child processes over Node's IPC channel: `{ id, type, ...args }`
 * in, `{ id, ok, result | error }` out. A child whose parent went away exits.
 */
export type IpcHandler = (message: Record<string, any>) => unknown;

export function serveIpc(handlers: Record<string, IpcHandler>): void {
  if (!process.send) throw new Error('this bench app runs as a child of the bench driver (IPC channel needed)');
  process.on('message', (message: Record<string, any>) => {
    const handler = handlers[message.type];
    Promise.resolve()
      .then(() => {
        if (!handler) throw new Error(`unknown request ${String(message.type)}`);
        return handler(message);
      })
      .then(
        (result) => process.send?.({ id: message.id, ok: true, result }),
        (error) => process.send?.({ id: message.id, ok: false, error: String((error as Error)?.stack ?? error) }),
      );
  });
  process.on('disconnect', () => process.exit(0));
}

/** Tells the driver this app is up (and on which port). */
export function announceReady(info: Record<string, unknown>): void {
  process.send?.({ ready: true, ...info });
}

/** Heap and RSS after two full collections (the app runs with --expose-gc when memory is measured). */
export async function measureMemory(): Promise<NodeJS.MemoryUsage> {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return process.memoryUsage();
}

/** `profileStart` / `profileStop { file }`: a CPU profile of a window the driver chooses (the soak: from the kill until the stations answered). */
export function windowProfiler(): Record<string, IpcHandler> {
  let profiler: Session | null = null;
  return {
    profileStart: async () => {
      profiler = new Session();
      profiler.connect();
      await profiler.post('Profiler.enable');
      await profiler.post('Profiler.start');
      return true;
    },
    profileStop: async (message) => {
      if (!profiler) return false;
      const { profile } = await profiler.post('Profiler.stop');
      writeFileSync(message.file as string, JSON.stringify(profile));
      profiler.disconnect();
      profiler = null;
      return true;
    },
  };
}
