/**
 * Events a protocol client received, handed out as an async iterator in arrival order:
 * buffered from the start (none is lost before someone iterates), ending when closed.
 */
export class EventQueue<T> {
  readonly #items: T[] = [];
  #waiter: (() => void) | undefined;
  #closed = false;

  push(item: T): void {
    this.#items.push(item);
    this.#wake();
  }

  /** No more events: iteration ends once the buffered ones are taken. */
  close(): void {
    this.#closed = true;
    this.#wake();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    for (;;) {
      const next = this.#items.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (this.#closed) return;
      await new Promise<void>((resolve) => (this.#waiter = resolve));
    }
  }

  #wake(): void {
    const wake = this.#waiter;
    this.#waiter = undefined;
    wake?.();
  }
}
