// The NATS lease keeper's thread (see NatsNodeLiveness): a heartbeat on the node's record, a
// compare-and-set on its revision under the node's token, on a connection of its own, only while
// the event loop's own heartbeat is overdue (two writers on one revision would only make each
// other's writes fail). Plain JavaScript (see lease-keeper-loop.mjs).
import { workerData } from 'node:worker_threads';
import { jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { mainNow, runLeaseKeeper, slots } from '../cluster/lease-keeper-loop.mjs';

const { connection, bucket, key, requestTimeoutMs, revisionSlot, lastBeatSlot, intervalMs, ttlMs } = workerData;
const JS_WRONG_LAST_SEQUENCE = 10071;

let connecting = null;
let opening = null;
let beats = 0;

/** The nodes bucket on this thread's own connection (made on first use, again after a failure). */
function nodesBucket() {
  connecting ??= connect({ maxReconnectAttempts: -1, reconnectTimeWait: 250, pingInterval: 5000, ...connection, waitOnFirstConnect: true }).catch((error) => {
    connecting = null;
    throw error;
  });
  opening ??= connecting
    .then((nc) => new Kvm(jetstream(nc, { timeout: requestTimeoutMs })).open(bucket))
    .catch((error) => {
      opening = null;
      throw error;
    });
  return opening;
}

const isRevisionConflict = (error) => {
  const code = error?.code ?? (typeof error?.apiError === 'function' ? error.apiError().err_code : undefined);
  return code === JS_WRONG_LAST_SEQUENCE;
};

/** Publishes a revision this node's token wrote (either thread may hold the newer one). */
function noteRevision(revision) {
  slots[revisionSlot] = Math.max(slots[revisionSlot], revision);
}

/** One compare-and-set of an `alive` record under `token` on `revision`: the new revision. */
function write(kv, token, revision) {
  beats++;
  return kv.update(key, JSON.stringify({ state: 'alive', token, ttlMs, beat: beats, thread: 'lease-keeper' }), revision, ttlMs);
}

async function renew(token) {
  // The event loop beats on time (not half an interval late): the record is its to write.
  if (mainNow() - slots[lastBeatSlot] <= intervalMs * 1.5) return false;
  const kv = await nodesBucket();
  const sentAt = mainNow();
  try {
    noteRevision(await write(kv, token, slots[revisionSlot]));
  } catch (error) {
    if (!isRevisionConflict(error)) throw error;
    // The record moved on. Still ours and alive: a write of the event loop's (perhaps one whose
    // answer it has not read yet, being busy): write on its revision. Anything else (a survivor's
    // fence, another process, a clean leave, a lost record) is the event loop's to handle.
    const entry = await kv.get(key);
    if (!entry || entry.operation !== 'PUT') return false;
    const record = entry.json();
    if (record?.token !== token || record.state !== 'alive') return false;
    noteRevision(await write(kv, token, entry.revision));
  }
  slots[lastBeatSlot] = Math.max(slots[lastBeatSlot], sentAt);
  return true;
}

// Connected before the first stall needs it (a failure here is tried again at the first renewal).
nodesBucket().catch(() => undefined);

runLeaseKeeper({
  renew,
  close: () => connecting?.then((nc) => nc.close()),
  // Often enough to step in within a quarter of an interval of a missed heartbeat.
  tickMs: Math.max(25, Math.floor(intervalMs / 4)),
});
