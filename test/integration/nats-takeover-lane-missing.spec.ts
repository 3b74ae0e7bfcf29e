import { describe, expect, it } from '@jest/globals';
import { jetstreamManager } from '@nats-io/jetstream';
import { inboxOf } from '../../lib/cluster/address.js';
import { NodeLoss } from '../../lib/cluster/node-loss.js';
import { natsTestBed } from '../support/nats-test-bed.js';
import { command, Inbox, MemoryLogger } from '../support/redis-fixtures.js';
import { waitFor } from '../support/wait.js';

/**
 * A survivor takes over a dead node whose inbox holds a command from a caller node that is still
 * alive by its record but has no replies stream any more (a survivor took it over too and deleted
 * its streams; it is rejoining). On the old code the answer's NodeLaneMissingError failed the
 * whole takeover, on every check: the dead node was never cleared (and, fenced, never rejoined).
 * The answer is dropped instead; a caller whose replies stream exists is still answered.
 */

describe('NATS takeover when a caller node has no replies stream', () => {
  const bed = natsTestBed('takeover-lane-missing');
  const startTransport = bed.transport;

  it('drops the answer to the caller without replies, answers the other caller, and completes', async () => {
    // The dead node reads nothing: what callers sent it stays in its inbox for the survivor.
    const dead = await startTransport('lane-dead');
    // Beats (alive by its record) but reads nothing, so nothing of it remakes its streams.
    const laneless = await startTransport('lane-laneless');
    const callerInbox = new Inbox();
    await startTransport('lane-caller', callerInbox);
    const survivor = await startTransport('lane-survivor');
    const logger = new MemoryLogger();
    const nodeLoss = new NodeLoss({ nodeId: 'lane-survivor', adapter: survivor, logger });

    await dead.setPresence('LANE-CP-DEAD', 'ocpp1.6', Date.now());
    const fromLaneless = command('lane-laneless', 'LANE-CP-1');
    const fromCaller = command('lane-caller', 'LANE-CP-2');
    // The laneless caller's command comes first: on the old code its failure stopped the takeover before the other.
    await laneless.publish(inboxOf('lane-dead'), fromLaneless);
    await survivor.publish(inboxOf('lane-dead'), fromCaller);
    dead.abort(); // kill -9: its record stops beating, its inbox and presence stay

    // As a survivor's takeover of the caller would have left it: its replies stream deleted.
    const jsm = await jetstreamManager(survivor.connection!);
    const lanelessReplies = laneless.names.repliesStream('lane-laneless');
    await jsm.streams.delete(lanelessReplies);

    await waitFor('the dead node to be listed as lost', async () => (await survivor.lostNodes()).includes('lane-dead'), { timeoutMs: 20_000 });
    expect(await survivor.isNodeAlive('lane-laneless')).toBe(true);
    const report = await nodeLoss.takeOver('lane-dead');

    expect(logger.lines.filter((line) => line.includes('failed'))).toEqual([]);
    expect(report).toEqual({ nodeId: 'lane-dead', forwarded: 0, answered: 1, dropped: 1, presenceRemoved: 1, completed: true });
    expect(logger.lines).toContain('log took over node lane-dead: 0 forwarded, 1 answered, 1 dropped, 1 presence entries removed');
    const reply = await waitFor('the caller with a replies stream to be answered', () =>
      callerInbox.ofKind('reply').find((message) => message.id === fromCaller.id),
    );
    expect(reply).toMatchObject({ from: 'lane-survivor', identity: 'LANE-CP-2', outcome: { status: 'notConnected', reason: 'node lane-dead died' } });

    // The dead node is cleared: its streams and presence are gone, it is lost no more.
    for (const stream of [dead.names.inboxStream('lane-dead'), dead.names.repliesStream('lane-dead'), lanelessReplies]) {
      await expect(jsm.streams.info(stream)).rejects.toThrow(/stream not found/i);
    }
    expect(await survivor.getPresence('LANE-CP-DEAD')).toBeNull();
    expect(await survivor.lostNodes()).not.toContain('lane-dead');
  }, 60_000);
});
