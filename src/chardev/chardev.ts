/**
 * The host end of a guest serial line. The UART model knows nothing of it; the VMM wires the
 * UART's output sink to `write` and `onInput` to the UART's receive queue.
 */
export interface Chardev {
  /** Sends bytes to the host side. Never blocks the caller; bytes with nowhere to go are dropped. */
  write(bytes: Uint8Array): void;
  /** Registers a receiver for bytes from the host side (several may be registered). */
  onInput(cb: (bytes: Uint8Array) => void): void;
  /** Resolves when everything written so far has reached the host file descriptor. */
  flush(): Promise<void>;
  /** Flushes, then releases the host resources (and restores the terminal). */
  close(): Promise<void>;
}

/** Counts writes in flight so that `flush` can wait for them. */
export class PendingWrites {
  private count = 0;
  private waiters: Array<() => void> = [];

  /** Call before starting a write; call the returned function when it completes. */
  start(): () => void {
    this.count++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.count--;
      if (this.count === 0) for (const w of this.waiters.splice(0)) w();
    };
  }

  idle(): Promise<void> {
    if (this.count === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}
