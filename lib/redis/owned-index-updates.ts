/** Per node, what a batch of presence writes changes in its owned index. */
export interface OwnedChanges {
  added: string[];
  dropped: string[];
}

/** Per node, per identity, the write to its owned index that counts. */
export type LastOwnedWrites = Map<string, Map<string, keyof OwnedChanges>>;

/** The changes that `lastWrite` describes. */
export function ownedChangesOf(lastWrite: LastOwnedWrites): Map<string, OwnedChanges> {
  const changes = new Map<string, OwnedChanges>();
  for (const [nodeId, byIdentity] of lastWrite) {
    const change: OwnedChanges = { added: [], dropped: [] };
    for (const [identity, write] of byIdentity) change[write].push(identity);
    changes.set(nodeId, change);
  }
  return changes;
}

/** A batch's place in the order of owned-index updates. */
export interface OwnedUpdateTurn {
  /** The batch's changes are known: resolves once they (and every earlier batch's) are applied. */
  apply(changes: Map<string, OwnedChanges>): Promise<void>;
  /** The batch changes nothing (its writes failed): later batches need not wait for it. */
  skip(): void;
}

interface Waiting {
  changes: Map<string, OwnedChanges> | null;
  settle(error: Error | null): void;
}

/**
 * Applies the owned-index changes of presence write batches in batch order, so that an earlier
 * batch's update never lands after a later one's. Every batch whose changes are ready while an
 * update is in flight joins the next update, so a connection storm (one batch per event-loop
 * turn) waits for one index round trip per update, not one per earlier batch: applied one by
 * one, a storm's claims queued behind each other's SADDs, and handshakes waited seconds.
 */
export class OwnedIndexUpdates {
  private readonly queue: Waiting[] = [];
  private updating = false;

  constructor(private readonly write: (changes: Map<string, OwnedChanges>) => Promise<void>) {}

  /** Takes the next place in the order; call it when the batch is made, before its writes are sent. */
  take(): OwnedUpdateTurn {
    let settle!: (error: Error | null) => void;
    const applied = new Promise<void>((resolve, reject) => (settle = (error) => (error ? reject(error) : resolve())));
    const waiting: Waiting = { changes: null, settle };
    this.queue.push(waiting);
    return {
      apply: (changes) => {
        waiting.changes = changes;
        this.next();
        return applied;
      },
      skip: () => {
        applied.catch(() => undefined);
        waiting.changes = new Map();
        this.next();
      },
    };
  }

  /** Writes the changes of every ready batch at the head of the queue, merged, unless an update runs. */
  private next(): void {
    if (this.updating) return;
    const ready: Waiting[] = [];
    while (this.queue.length > 0 && this.queue[0].changes !== null) ready.push(this.queue.shift()!);
    if (ready.length === 0) return;
    this.updating = true;
    this.write(mergeInOrder(ready.map((waiting) => waiting.changes!))).then(
      () => this.finish(ready, null),
      (error: unknown) => this.finish(ready, error instanceof Error ? error : new Error(String(error))),
    );
  }

  private finish(batches: Waiting[], error: Error | null): void {
    this.updating = false;
    for (const batch of batches) batch.settle(error);
    this.next();
  }
}

/** The changes of several batches as one: per node and identity, the later batch's write wins. */
function mergeInOrder(batches: ReadonlyArray<Map<string, OwnedChanges>>): Map<string, OwnedChanges> {
  if (batches.length === 1) return batches[0];
  const lastWrite: LastOwnedWrites = new Map();
  for (const changes of batches) {
    for (const [nodeId, { added, dropped }] of changes) {
      let byIdentity = lastWrite.get(nodeId);
      if (!byIdentity) lastWrite.set(nodeId, (byIdentity = new Map()));
      for (const identity of added) byIdentity.set(identity, 'added');
      for (const identity of dropped) byIdentity.set(identity, 'dropped');
    }
  }
  return ownedChangesOf(lastWrite);
}
