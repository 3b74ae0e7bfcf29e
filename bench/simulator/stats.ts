/** Counters shared by every station of a fleet (plain fields: stations bump them on hot paths). */
export class FleetStats {
  /** Sockets open right now. */
  connected = 0;
  /** Stations whose BootNotification was accepted on their current socket. */
  booted = 0;
  /** Sockets opened since the start (first connections and reconnections). */
  opens = 0;
  reconnects = 0;
  connectFailures = 0;
  /** Station → CSMS calls answered with a CALLRESULT. */
  callsOut = 0;
  /** CSMS → station calls answered by the stations. */
  callsIn = 0;
  /** CALLERRORs received for our calls. */
  callErrors = 0;
  timeouts = 0;
  /** Malformed or unexpected frames from the CSMS. */
  protocolErrors = 0;
  /** Sockets the CSMS (or the network) closed while we wanted them open. */
  unexpectedCloses = 0;
  readonly inboundByAction = new Map<string, number>();
  /** Latency of the stations' own calls answered (boot, heartbeat, status, transactions): the CSMS's inbound handling as they see it. */
  readonly callLatency = new LatencyRecorder();
  private readonly errorKinds = new Map<string, number>();

  get errors(): number {
    return this.connectFailures + this.callErrors + this.timeouts + this.protocolErrors;
  }

  noteInbound(action: string): void {
    this.callsIn++;
    this.inboundByAction.set(action, (this.inboundByAction.get(action) ?? 0) + 1);
  }

  /** Keeps a bounded tally of error kinds for the final summary. */
  noteError(kind: string): void {
    const count = this.errorKinds.get(kind);
    if (count !== undefined) this.errorKinds.set(kind, count + 1);
    else if (this.errorKinds.size < 50) this.errorKinds.set(kind, 1);
  }

  topErrors(limit = 10): Array<[string, number]> {
    return [...this.errorKinds].sort((a, b) => b[1] - a[1]).slice(0, limit);
  }

  snapshot(): Record<string, unknown> {
    return {
      connected: this.connected,
      booted: this.booted,
      opens: this.opens,
      reconnects: this.reconnects,
      connectFailures: this.connectFailures,
      callsOut: this.callsOut,
      callsIn: this.callsIn,
      callErrors: this.callErrors,
      timeouts: this.timeouts,
      protocolErrors: this.protocolErrors,
      unexpectedCloses: this.unexpectedCloses,
      errors: this.errors,
      inboundByAction: Object.fromEntries(this.inboundByAction),
      topErrors: this.topErrors(),
      callLatencyMs: this.callLatency.summary(),
    };
  }
}

export interface LatencySummary {
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Every latency of a run (milliseconds), kept in a growing Float64Array. */
export class LatencyRecorder {
  private values = new Float64Array(4096);
  private size = 0;

  get count(): number {
    return this.size;
  }

  record(ms: number): void {
    if (this.size === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.size++] = ms;
  }

  summary(): LatencySummary {
    const sorted = this.values.slice(0, this.size).sort();
    const at = (q: number): number => (this.size === 0 ? 0 : sorted[Math.min(this.size - 1, Math.floor(q * this.size))]);
    let sum = 0;
    for (let i = 0; i < this.size; i++) sum += sorted[i];
    return {
      count: this.size,
      mean: this.size === 0 ? 0 : sum / this.size,
      p50: at(0.5),
      p90: at(0.9),
      p99: at(0.99),
      max: this.size === 0 ? 0 : sorted[this.size - 1],
    };
  }
}
