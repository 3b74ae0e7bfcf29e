/** The waits the framework-free parts share. */

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The promise's value, or `undefined` once `ms` passed first. Used wherever a step must not
 * hold up shutdown or a health answer (a dead Redis can leave a command waiting for minutes).
 */
export async function settleWithin<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The promise's value, or a rejection with `late()` once the epoch-ms `deadline` passed first: a
 * caller is answered at its deadline even while the transport is stalled. A later rejection of
 * the promise is not left unhandled.
 */
export async function beforeDeadline<T>(promise: Promise<T>, deadline: number, late: () => Error): Promise<T> {
  promise.catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(late()), Math.max(0, deadline - Date.now())))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
