import { describe, expect, it } from '@jest/globals';
import { jetstreamManager } from '@nats-io/jetstream';
import { inboxOf } from '../../lib/cluster/address.js';
import type { NatsLostNodeClaim } from '../../lib/nats/lost-node-claim.js';
import type { NatsNodeLiveness } from '../../lib/nats/node-liveness.js';
import { natsTestBed } from '../support/nats-test-bed.js';
import { command, gate, Inbox } from '../support/redis-fixtures.js';
import { waitFor } from '../support/wait.js';

/**
 * A survivor finishing a takeover checks that its fence still holds, then deletes the lost node's
 * streams. The lost node, woken, rejoins in between: on the old code it renewed its record and
 * made its streams anew, and the survivor's delete then took them away under it (it ran with no
 * inbox; commands to it failed with "has no inbox"). The interleaving is made certain: the
 * survivor is held right after its check while the lost node is told it was taken over.
 */

describe('NATS takeover finishing while the lost node rejoins', () => {
  const bed = natsTestBed('takeover-finish');
  const startTransport = bed.transport;

  it('leaves the rejoined node with an inbox that receives commands', async () => {
    const inbox = new Inbox();
    const victim = await startTransport('finish-victim', inbox);
    const survivor = await startTransport('finish-survivor');
    // The victim goes silent as a frozen process does (no heartbeat), until the test beats for it.
    const victimLiveness = (victim as unknown as { liveness: NatsNodeLiveness }).liveness;
    victimLiveness.stop();

    const claim = (await waitFor('the silent victim to be claimed', () => survivor.claimLostNode('finish-victim'), { timeoutMs: 20_000 })) as NatsLostNodeClaim;
    for (let batch = await claim.next(); batch && batch.length > 0; batch = await claim.next()) {
      for (const entry of batch) await claim.settle(entry);
    }

    // finish() is held just after its check that the fence is still ours.
    const checked = gate();
    const resume = gate();
    const check = claim.stillHeld.bind(claim);
    claim.stillHeld = async () => {
      const held = await check();
      checked.open();
      await resume.promise;
      return held;
    };
    const finishing = claim.finish();
    await checked.promise;

    // The victim wakes: its heartbeat finds the fence and it rejoins (or waits to).
    await victimLiveness.beat();
    await waitFor('the victim to rejoin or to wait for the survivor', async () => {
      const metrics = await victim.metrics();
      return (metrics.rejoins ?? 0) >= 1 || (metrics.rejoinFenceWaits ?? 0) >= 1;
    });
    claim.stillHeld = check;
    resume.open();
    const finished = await finishing;
    await claim.release();

    await waitFor('the victim to rejoin', async () => ((await victim.metrics()).rejoins ?? 0) >= 1);
    const jsm = await jetstreamManager(survivor.connection!);
    expect((await jsm.streams.info(victim.names.inboxStream('finish-victim'))).config.subjects).toEqual([victim.names.inboxSubject('finish-victim')]);

    const sent = command('finish-survivor', 'FINISH-CP-1');
    await survivor.publish(inboxOf('finish-victim'), sent);
    await waitFor('the command to reach the rejoined victim', () => inbox.ofKind('command').find((message) => message.id === sent.id));
    expect(victim.healthIssue()).toBeNull();
    expect(finished.status).toBe('done');
  }, 60_000);

  it('lets the lost node rejoin once the survivor that fenced it died before finishing', async () => {
    const inbox = new Inbox();
    const victim = await startTransport('unfinished-victim', inbox);
    const survivor = await startTransport('unfinished-survivor');
    const sender = await startTransport('unfinished-sender');
    const victimLiveness = (victim as unknown as { liveness: NatsNodeLiveness }).liveness;
    victimLiveness.stop();
    await waitFor('the silent victim to be claimed', () => survivor.claimLostNode('unfinished-victim'), { timeoutMs: 20_000 });
    survivor.abort();

    await victimLiveness.beat();
    await waitFor('the victim to rejoin', async () => ((await victim.metrics()).rejoins ?? 0) >= 1, { timeoutMs: 20_000 });
    expect((await victim.metrics()).rejoinFenceWaits).toBeGreaterThanOrEqual(1);

    const sent = command('unfinished-sender', 'UNFINISHED-CP-1');
    await sender.publish(inboxOf('unfinished-victim'), sent);
    await waitFor('the command to reach the rejoined victim', () => inbox.ofKind('command').find((message) => message.id === sent.id));
  }, 60_000);
});
