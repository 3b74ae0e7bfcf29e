import { NodeShuttingDownError, NotConnectedError, OcppTimeoutError } from '../protocol/errors.js';
import type { OcppProtocol } from '../protocol/protocol.js';
import { asClusterError } from './call-router.js';
import { CallIds } from './call-ids.js';
import type { CallRouter, RouteRequest } from './call-router.js';
import type { CallChecks } from './call-checks.js';
import { invalidIdentityError } from './call-checks.js';
import { versionFields, type ClusterMessage, type CommandEnvelope, type Versioned } from './envelope.js';
import { inboxOf, type NodeAddress } from './address.js';
import type { EventAdapterInterface, PresenceRecord } from './event-adapter.interface.js';
import { groupBy } from './group-by.js';
import { callLocal } from './local-call.js';
import { outcomeLabel } from './metrics-sink.js';
import type { NodeMetrics } from './node-metrics.js';
import type { BatchOutcome, SendOptions } from './node-types.js';
import type { RemoteCalls } from './remote-calls.js';
import { refuseDeliveryWindow } from './parked-calls.js';
import type { DeliveryWindow, ParkedCalls } from './parked-calls.js';
import { beforeDeadline } from './time-bounds.js';
import { clusterTracer } from './tracing.js';

export interface OutboundCallsDeps {
  nodeId: string;
  adapter: EventAdapterInterface;
  router: CallRouter;
  remoteCalls: RemoteCalls;
  checks: CallChecks;
  metrics: NodeMetrics;
  isStopping: () => boolean;
  parkedCalls: ParkedCalls;
  /** The wire version this node writes (its commands carry it). */
  wireVersion: number;
}

/** The caller side of the public API: checks the input, asks the router where each call goes, sends it, settles it. */
export class OutboundCalls {
  private readonly ids = new CallIds();
  private readonly version: Versioned;

  constructor(private readonly deps: OutboundCallsDeps) {
    this.version = versionFields(deps.wireVersion);
  }

  /** The charge point's reply, from whichever node holds its socket. */
  async sendToClient(
    identity: string,
    protocol: OcppProtocol | undefined,
    action: string,
    payload: Record<string, unknown>,
    options: SendOptions = {},
  ): Promise<Record<string, unknown>> {
    const { checks, metrics } = this.deps;
    this.requireRunning();
    checks.requireValidIdentity(identity);
    const timeoutMs = checks.timeoutOf(options);
    const window = this.deps.parkedCalls.windowOf(options);
    checks.requireEncodable(action, payload);
    const started = performance.now();
    // Decided without I/O, as it always was: a local socket is 'local' even if its call fails.
    const route = this.deps.router.servingConnection(identity) ? 'local' : 'remote';
    const span = clusterTracer.start(`ocpp.send ${action}`, 'client', {
      'ocpp.identity': identity,
      'ocpp.action': action,
      'ocpp.node': this.deps.nodeId,
      'ocpp.route': route,
      'ocpp.deliver_within_ms': window?.deliverWithinMs,
    });
    const request: RouteRequest = { protocol, action, payload, deadline: Date.now() + timeoutMs, span };
    metrics.counters.sent++;
    try {
      const result = window ? await this.callOrPark(identity, request, timeoutMs, window) : await this.call(identity, request, timeoutMs);
      metrics.sink.outboundCall(metrics.actionLabel(action), route, 'ok', (performance.now() - started) / 1000);
      span.end();
      return result;
    } catch (error) {
      if ((error as { code?: string }).code === 'OCPP_TIMEOUT') metrics.counters.timeouts++;
      else metrics.counters.failures++;
      metrics.sink.outboundCall(metrics.actionLabel(action), route, outcomeLabel(error), (performance.now() - started) / 1000);
      span.end(error);
      throw error;
    }
  }

  /**
   * OCPP 2.1 SEND: a message the charge point never answers. Resolves once the owning node
   * wrote it to the socket.
   */
  async sendMessage(identity: string, action: string, payload: Record<string, unknown>, options: SendOptions = {}): Promise<void> {
    const { checks, router } = this.deps;
    this.requireRunning();
    refuseDeliveryWindow(options, 'sendMessage');
    checks.requireValidIdentity(identity);
    const timeoutMs = checks.timeoutOf(options);
    checks.requireEncodable(action, payload);
    const request: RouteRequest = { protocol: undefined, action, payload, deadline: Date.now() + timeoutMs };
    const route = await router.route(identity, request);
    if (route.kind === 'local') {
      route.connection.rpc.sendMessage(action, payload);
      return;
    }
    await this.sendRemote(route.owner, request, timeoutMs, { fireAndForget: true });
  }

  /** Sends to each identity through its owner (one publish batch per owner); every outcome comes back. */
  async broadcastBatch(
    identities: readonly string[],
    action: string,
    payload: Record<string, unknown>,
    options: SendOptions = {},
  ): Promise<BatchOutcome[]> {
    const { checks, router, adapter } = this.deps;
    this.requireRunning();
    refuseDeliveryWindow(options, 'broadcastBatch');
    const timeoutMs = checks.timeoutOf(options);
    checks.requireEncodable(action, payload);
    const request: RouteRequest = { protocol: undefined, action, payload, deadline: Date.now() + timeoutMs };
    const unique = [...new Set(identities)];
    // An identity that can never connect gets its own outcome; it must not reach a presence key.
    const invalid = new Set(unique.filter((identity) => !checks.isPossibleIdentity(identity)));
    const remoteIdentities = unique.filter((identity) => !invalid.has(identity) && !router.servingConnection(identity));
    // Nothing was sent while presence is read: past the deadline (a stalled Redis) every call is "timed out, not sent".
    const owners =
      remoteIdentities.length > 0
        ? await beforeDeadline(adapter.getPresenceBatch(remoteIdentities), request.deadline, () => new OcppTimeoutError('*', action, timeoutMs, false))
        : new Map<string, PresenceRecord>();
    const batch: { to: NodeAddress; message: ClusterMessage }[] = [];
    // Each promise settles into an outcome at once, so none is ever an unhandled rejection.
    const outcomes = new Map<string, Promise<BatchOutcome>>();
    const track = (identity: string, call: Promise<Record<string, unknown>>) =>
      outcomes.set(
        identity,
        call.then(
          (result): BatchOutcome => ({ identity, status: 'fulfilled', result }),
          (error): BatchOutcome => ({ identity, status: 'rejected', error: error as Error }),
        ),
      );

    for (const identity of unique) {
      if (invalid.has(identity)) {
        track(identity, Promise.reject(invalidIdentityError(identity)));
        continue;
      }
      const local = router.servingConnection(identity);
      if (local) {
        track(identity, callLocal(local, undefined, action, payload, request.deadline));
        continue;
      }
      const known = owners.get(identity) ?? null;
      // A charge point this node handed over waits for its new owner on its own, outside the batch;
      // one connecting here right now waits for its socket.
      if (router.isHandedOverHere(identity, known) || router.isHandshakingHere(identity)) {
        track(identity, this.call(identity, request, timeoutMs));
        continue;
      }
      let owner: PresenceRecord;
      try {
        owner = router.remoteOwner(identity, known, request);
      } catch (error) {
        track(identity, Promise.reject(error));
        continue;
      }
      const command = this.commandFor(owner.identity, request);
      track(identity, this.deps.remoteCalls.wait(command.id, { identity, action, timeoutMs, deadline: request.deadline }));
      batch.push({ to: inboxOf(owner.nodeId), message: command });
    }
    if (this.deps.isStopping()) {
      // Stopped while presence was read: nothing of the batch leaves the node.
      for (const { message } of batch) this.deps.remoteCalls.fail((message as CommandEnvelope).id, new NodeShuttingDownError());
      return Promise.all(outcomes.values());
    }
    this.deps.metrics.counters.remoteSent += batch.length;
    // One publish per owner: a node that refuses (a full inbox) or fails fails only its own
    // commands; the others were appended and will run, so their callers must not hear otherwise.
    // Not awaited: every outcome settles by the deadline even while a stalled transport holds a publish.
    for (const list of groupBy(batch, ({ to }) => to.node).values()) {
      adapter.publishBatch(list).catch((error) => {
        for (const { message } of list) this.deps.remoteCalls.fail((message as CommandEnvelope).id, asClusterError(error));
      });
    }
    return Promise.all(outcomes.values());
  }

  /** `deliverWithinMs`: sent at once when it is connected; parked until it connects (or the window ends) when not. */
  private async callOrPark(identity: string, request: RouteRequest, timeoutMs: number, window: DeliveryWindow): Promise<Record<string, unknown>> {
    try {
      return await this.call(identity, request, timeoutMs);
    } catch (error) {
      // Only a definite "not connected, never sent" may wait: anything else may have reached it.
      if (!(error instanceof NotConnectedError) || error.maybeDelivered || Date.now() >= window.deliverBy) throw error;
    }
    request.span?.setAttribute('ocpp.parked', true);
    return this.deps.parkedCalls.park(identity, request, timeoutMs, window);
  }

  private async call(identity: string, request: RouteRequest, timeoutMs: number): Promise<Record<string, unknown>> {
    // Routing reads presence; a stalled Redis must not hold the caller past its deadline (nothing was sent yet).
    const route =
      this.deps.router.routeNow(identity, request) ??
      (await beforeDeadline(this.deps.router.route(identity, request), request.deadline, () => new OcppTimeoutError(identity, request.action, timeoutMs, false)));
    if (route.kind === 'local') return callLocal(route.connection, request.protocol, request.action, request.payload, request.deadline, undefined, request.span);
    return this.sendRemote(route.owner, request, timeoutMs);
  }

  /** Sends the command to the owner's inbox; settles with the owner's answer. */
  private async sendRemote(
    owner: PresenceRecord,
    request: RouteRequest,
    timeoutMs: number,
    extra: Pick<CommandEnvelope, 'fireAndForget'> = {},
  ): Promise<Record<string, unknown>> {
    // Checked in the same turn as the publish: once the node stops, nothing more leaves it, so a
    // stop never fails a call whose command it is still handing over.
    this.requireRunning();
    const { identity } = owner;
    // The hop to the owner's inbox; the owner's spans are its children (trace context in the envelope).
    const hop = request.span?.child('ocpp.cluster.publish', 'producer', { 'ocpp.target_node': owner.nodeId });
    const command = this.commandFor(identity, request);
    if (extra.fireAndForget !== undefined) command.fireAndForget = extra.fireAndForget;
    const trace = hop?.carrier();
    if (trace) command.trace = trace;
    const reply = this.deps.remoteCalls.wait(command.id, {
      identity,
      action: request.action,
      timeoutMs,
      deadline: request.deadline,
      expectedProtocol: request.protocol,
    });
    this.deps.metrics.counters.remoteSent++;
    // Not awaited: the reply settles at the deadline even while a stalled transport still holds
    // the publish (the owner never runs a command past its deadline); a failed publish fails it sooner.
    this.deps.adapter.publish(inboxOf(owner.nodeId), command).then(
      () => hop?.end(),
      (error: unknown) => {
        hop?.end(error);
        this.deps.remoteCalls.fail(command.id, asClusterError(error));
      },
    );
    return reply;
  }

  /** A new command, in this node's wire version (stamped here: the transport's stamp would copy it). */
  private commandFor(identity: string, { protocol, action, payload, deadline }: RouteRequest): CommandEnvelope {
    const command: CommandEnvelope = { kind: 'command', id: this.ids.next(), origin: this.deps.nodeId, identity, action, payload, protocol, deadline };
    const { v, reads } = this.version;
    if (v !== undefined) command.v = v;
    if (reads !== undefined) command.reads = reads;
    return command;
  }

  private requireRunning(): void {
    if (this.deps.isStopping()) throw new NodeShuttingDownError();
  }
}
