/**
 * Gathers the requests made during one turn of the event loop and hands them over as one batch.
 * A storm of connections arrives as one I/O callback per socket; batching per turn (flushed by
 * setImmediate, after the poll phase) lets them share one Redis call instead of one each.
 */
export class TickBatcher<In, Out> {
  private pending: Array<{ input: In; resolve: (value: Out) => void; reject: (error: unknown) => void }> = [];
  private scheduled = false;

  /**
   * `runBatch` answers each input, in order, with its result or an Error of its own; when it
   * throws, every request of the batch fails with that error.
   */
  constructor(private readonly runBatch: (inputs: In[]) => Promise<Array<Out | Error>>) {}

  add(input: In): Promise<Out> {
    return new Promise<Out>((resolve, reject) => {
      this.pending.push({ input, resolve, reject });
      if (this.scheduled) return;
      this.scheduled = true;
      setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    const batch = this.pending;
    this.pending = [];
    this.scheduled = false;
    this.runBatch(batch.map((request) => request.input)).then(
      (outcomes) =>
        batch.forEach((request, index) => {
          const outcome = outcomes[index];
          if (outcome instanceof Error) request.reject(outcome);
          else request.resolve(outcome);
        }),
      (error: unknown) => batch.forEach((request) => request.reject(error)),
    );
  }
}
