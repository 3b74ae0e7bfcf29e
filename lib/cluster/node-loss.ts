import type { EventAdapterInterface, LostNodeClaim, NodeLossPrimitives, PendingEntry } from './event-adapter.interface.js';
import type { ClusterLogger } from './logger.js';
import { settleLostEntry, type LostEntryFate } from './lost-command.js';

/** A takeover that keeps finding new entries gives up after this many passes (the next check retries). */
const MAX_PASSES = 5;
const DEFAULT_CHECK_INTERVAL_MS = 1_000;

export interface TakeoverReport {
  nodeId: string;
  /** Commands sent on to the node that owns their charge point now, or parked again (`deliverWithinMs`). */
  forwarded: number;
  /** Commands answered to their caller (not connected, maybe delivered, timed out, inbox full). */
  answered: number;
  /** Entries nobody waits for (replies and evictions for the dead node, commands of dead callers). */
  dropped: number;
  /** Presence entries that still pointed at the dead node. */
  presenceRemoved: number;
  /** False when the node came back (or the claim was lost) before the takeover finished. */
  completed: boolean;
}

/** The counters under their metric names (`takeovers`, `takeoverForwarded`...). */
export interface NodeLossCounters {
  takeovers: number;
  takeoverForwarded: number;
  takeoverAnswered: number;
  takeoverDropped: number;
}

export interface NodeLossOptions {
  nodeId: string;
  adapter: EventAdapterInterface;
  logger: ClusterLogger;
  /** The node's wire version: answers go back in the caller's when it is older (default WIRE_VERSION). */
  wireVersion?: number;
  /** How often lost nodes are looked for (default: the transport's `lossCheckIntervalMs`, else 1000 ms). */
  intervalMs?: number;
}

/**
 * Node loss, for every transport that offers the primitives (NodeLossPrimitives): about once a
 * check interval this node asks for lost nodes, claims each (exclusive across the cluster, and
 * fencing it), and settles its inbox entry by entry by the one policy (lost-command.ts),
 * marking each settled only after it was answered or forwarded, so a failure midway never
 * answers twice; then the transport clears the node's presence and state. A transport without
 * the primitives gets none of it: callers of a dead owner wait for their own timeout.
 */
export class NodeLoss {
  private readonly primitives: NodeLossPrimitives | null;
  private readonly intervalMs: number;
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private scanning: Promise<TakeoverReport[]> | null = null;
  private rescan = false;

  /** Takeovers this node completed, and what became of the entries it settled. */
  takeovers = 0;
  forwarded = 0;
  answered = 0;
  dropped = 0;
  failures = 0;

  constructor(private readonly options: NodeLossOptions) {
    const { adapter } = options;
    this.primitives =
      typeof adapter.lostNodes === 'function' && typeof adapter.claimLostNode === 'function'
        ? { lostNodes: () => adapter.lostNodes!(), claimLostNode: (nodeId) => adapter.claimLostNode!(nodeId) }
        : null;
    this.intervalMs = options.intervalMs ?? adapter.lossCheckIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS;
  }

  counters(): NodeLossCounters {
    return { takeovers: this.takeovers, takeoverForwarded: this.forwarded, takeoverAnswered: this.answered, takeoverDropped: this.dropped };
  }

  /** Whether the transport offers the primitives (otherwise start() does nothing). */
  get supported(): boolean {
    return this.primitives !== null;
  }

  start(): void {
    if (this.running || !this.primitives) return;
    this.running = true;
    this.schedule(this.intervalMs);
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.scanning?.catch(() => undefined);
  }

  /** Looks for lost nodes soon (e.g. a node announced it left). */
  poke(): void {
    if (!this.running) return;
    if (this.scanning) {
      this.rescan = true;
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.schedule(0);
  }

  /** One pass: takes over every lost node no other node is taking over. */
  scan(): Promise<TakeoverReport[]> {
    this.scanning ??= this.scanOnce().finally(() => {
      this.scanning = null;
    });
    return this.scanning;
  }

  private async scanOnce(): Promise<TakeoverReport[]> {
    if (!this.primitives) return [];
    const reports: TakeoverReport[] = [];
    for (const nodeId of await this.primitives.lostNodes()) {
      if (nodeId === this.options.nodeId) continue;
      const report = await this.takeOver(nodeId);
      if (report) reports.push(report);
    }
    return reports;
  }

  /** Settles and clears one lost node; null when another node holds it or it is alive. */
  async takeOver(nodeId: string): Promise<TakeoverReport | null> {
    const { logger } = this.options;
    const claim = await this.primitives?.claimLostNode(nodeId);
    if (!claim) return null;
    const report: TakeoverReport = { nodeId, forwarded: 0, answered: 0, dropped: 0, presenceRemoved: 0, completed: false };
    try {
      logger.warn(`node ${nodeId} is gone (liveness lapsed); taking over its inbox`);
      for (let pass = 0; pass < MAX_PASSES; pass++) {
        if (!(await this.settleAll(claim, report))) return report;
        const finish = await claim.finish();
        report.presenceRemoved += finish.presenceRemoved;
        if (finish.status === 'returned') return report;
        if (finish.status === 'done') {
          report.completed = true;
          this.takeovers++;
          logger.log(
            `took over node ${nodeId}: ${report.forwarded} forwarded, ${report.answered} answered, ` +
              `${report.dropped} dropped, ${report.presenceRemoved} presence entries removed`,
          );
          return report;
        }
        // Entries arrived while we settled: settle again.
      }
      return report;
    } catch (error) {
      this.failures++;
      logger.warn(`takeover of node ${nodeId} failed: ${(error as Error).message}`);
      return report;
    } finally {
      await claim.release().catch(() => undefined);
    }
  }

  /**
   * Settles every entry of the lost node's inbox; false when the claim stopped holding. An entry
   * answered or forwarded is settled at once: a failure midway must not make the next pass answer
   * what was forwarded. Dropped ones are settled together after their batch (read again after a
   * failure, they are only dropped again): a storm of reconnections leaves thousands of
   * evictions in a dead node's inbox, and one round trip each held its commands back for seconds.
   */
  private async settleAll(claim: LostNodeClaim, report: TakeoverReport): Promise<boolean> {
    const { adapter, nodeId } = this.options;
    for (;;) {
      const entries = await claim.next();
      if (entries === null) return false;
      if (entries.length === 0) return true;
      const dropped: PendingEntry[] = [];
      for (const entry of entries) {
        const fate = await settleLostEntry(adapter, nodeId, claim.nodeId, entry, this.options.wireVersion);
        if (fate === 'dropped') {
          dropped.push(entry);
          continue;
        }
        this.count(report, fate);
        await claim.settle(entry);
      }
      await settleTogether(claim, dropped);
      for (let i = 0; i < dropped.length; i++) this.count(report, 'dropped');
    }
  }

  private count(report: TakeoverReport, fate: LostEntryFate): void {
    report[fate]++;
    this[fate]++;
  }

  private schedule(delayMs: number): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.scan()
        .catch((error: unknown) => {
          this.failures++;
          this.options.logger.debug?.(`lost node check failed: ${(error as Error).message}`);
        })
        .finally(() => {
          const again = this.rescan;
          this.rescan = false;
          this.schedule(again ? 0 : this.intervalMs);
        });
    }, delayMs);
    this.timer.unref();
  }
}

/** settleMany() where the transport offers it, else one by one. */
async function settleTogether(claim: LostNodeClaim, entries: readonly PendingEntry[]): Promise<void> {
  if (entries.length === 0) return;
  if (claim.settleMany) return claim.settleMany(entries);
  for (const entry of entries) await claim.settle(entry);
}
