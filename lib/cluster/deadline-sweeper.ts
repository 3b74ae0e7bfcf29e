/**
 * Expires many keys by deadline with one timer. Deadlines fall into slots of `resolutionMs`;
 * the timer waits for the earliest slot and expires every key of the slots that are due. A
 * setTimeout per remote call (made and cleared for each) was a top cost of the caller in the
 * cross-node profile; here adding and removing a key is a Set operation.
 * A key expires at most `resolutionMs` after its deadline, never before it.
 */
export class DeadlineSweeper<K> {
  private readonly slots = new Map<number, Set<K>>();
  private timer: NodeJS.Timeout | null = null;
  private timerSlot = Infinity;

  constructor(
    private readonly onExpired: (key: K) => void,
    private readonly resolutionMs = 25,
  ) {}

  /** Watches `key` until `deadline` (epoch ms); returns the slot to give to {@link remove}. */
  add(key: K, deadline: number): number {
    const slot = Math.ceil(deadline / this.resolutionMs) * this.resolutionMs;
    const keys = this.slots.get(slot);
    if (keys) keys.add(key);
    else this.slots.set(slot, new Set([key]));
    if (slot < this.timerSlot) this.arm(slot);
    return slot;
  }

  remove(key: K, slot: number): void {
    const keys = this.slots.get(slot);
    if (!keys) return;
    keys.delete(key);
    // An empty slot stays until its time comes: cheaper than re-arming the timer now.
  }

  /** Forgets every key without expiring it. */
  clear(): void {
    this.slots.clear();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.timerSlot = Infinity;
  }

  private arm(slot: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timerSlot = slot;
    this.timer = setTimeout(() => this.sweep(), Math.max(0, slot - Date.now()));
    this.timer.unref();
  }

  private sweep(): void {
    this.timer = null;
    this.timerSlot = Infinity;
    const now = Date.now();
    const due: Set<K>[] = [];
    let next = Infinity;
    for (const [slot, keys] of this.slots) {
      if (slot <= now) {
        due.push(keys);
        this.slots.delete(slot);
      } else if (slot < next) {
        next = slot;
      }
    }
    if (next !== Infinity) this.arm(next);
    for (const keys of due) for (const key of keys) this.onExpired(key);
  }
}
