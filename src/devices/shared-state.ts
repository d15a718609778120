/**
 * Device state that every thread of a machine sees.
 *
 * vCPUs run in worker threads and handle their own I/O exits (a hand-off to the main thread
 * would cost more than the exit itself), while the main thread feeds input and runs timers.
 * So a device's registers live in a SharedArrayBuffer: each thread builds its own device
 * object over the same bytes, and every access happens under the machine's device lock.
 */

/** A device's slice of shared memory. Offsets are 8-byte aligned so i32 views work. */
export class SharedRegion {
  readonly u8: Uint8Array;
  readonly i32: Int32Array;
  readonly view: DataView;
  constructor(readonly sab: SharedArrayBuffer, readonly offset: number, readonly length: number) {
    this.u8 = new Uint8Array(sab, offset, length);
    this.i32 = new Int32Array(sab, offset, length >> 2);
    this.view = new DataView(sab, offset, length);
  }
}

/**
 * Hands out regions in call order. Every thread creates the machine's devices in the same
 * order from the same plan, so each device object lands on the same bytes in every thread.
 */
export class SharedArena {
  private next = 0;
  constructor(readonly sab: SharedArrayBuffer) {}

  static create(bytes = 64 * 1024): SharedArena {
    return new SharedArena(new SharedArrayBuffer(bytes));
  }

  alloc(length: number): SharedRegion {
    const size = (length + 7) & ~7;
    if (this.next + size > this.sab.byteLength) throw new RangeError('shared device arena is full');
    const r = new SharedRegion(this.sab, this.next, size);
    this.next += size;
    return r;
  }
}

/**
 * A mutex over one i32 of shared memory (0 free, 1 held, 2 held with waiters). Node lets
 * every thread, the main one included, block in Atomics.wait. Held only for a register access.
 */
export class DeviceLock {
  private readonly word: Int32Array;
  constructor(region: SharedRegion) {
    this.word = region.i32;
  }

  lock(): void {
    let c = Atomics.compareExchange(this.word, 0, 0, 1);
    if (c === 0) return;
    do {
      if (c === 2 || Atomics.compareExchange(this.word, 0, 1, 2) !== 0) Atomics.wait(this.word, 0, 2);
      c = Atomics.compareExchange(this.word, 0, 0, 2);
    } while (c !== 0);
  }

  /** Takes the lock only if it is free now (for the main thread, which must never block on it). */
  tryLock(): boolean {
    return Atomics.compareExchange(this.word, 0, 0, 1) === 0;
  }

  unlock(): void {
    if (Atomics.sub(this.word, 0, 1) !== 1) {
      Atomics.store(this.word, 0, 0);
      Atomics.notify(this.word, 0, 1);
    }
  }

  with<T>(fn: () => T): T {
    this.lock();
    try {
      return fn();
    } finally {
      this.unlock();
    }
  }
}

/**
 * A single-producer-per-lock byte ring in shared memory: a UART's transmit path writes into
 * it from any vCPU thread (under the device lock), the main thread drains it to the chardev.
 * Layout: i32[0] head (total bytes written), i32[1] tail (total bytes read), data after 8 bytes.
 */
export class SharedByteRing {
  private readonly ctl: Int32Array;
  private readonly data: Uint8Array;
  readonly capacity: number;
  constructor(region: SharedRegion) {
    this.ctl = region.i32;
    this.data = region.u8.subarray(8);
    this.capacity = this.data.length;
    // Positions are free-running i32 counters: a power-of-two capacity keeps them in step when they wrap.
    if (this.capacity & (this.capacity - 1)) throw new RangeError('ring capacity must be a power of two');
  }

  static bytesFor(capacity: number): number {
    return capacity + 8;
  }

  get used(): number {
    return (Atomics.load(this.ctl, 0) - Atomics.load(this.ctl, 1)) | 0;
  }

  get free(): number {
    return this.capacity - this.used;
  }

  /** Append what fits; returns the number of bytes taken. Wakes a waiting drainer. */
  push(bytes: Uint8Array): number {
    const head = Atomics.load(this.ctl, 0);
    const n = Math.min(bytes.length, this.free);
    for (let i = 0; i < n; i++) this.data[((head + i) >>> 0) % this.capacity] = bytes[i]!;
    Atomics.store(this.ctl, 0, (head + n) | 0);
    if (n > 0) Atomics.notify(this.ctl, 0);
    return n;
  }

  /** Take everything buffered. */
  drain(): Uint8Array {
    const tail = Atomics.load(this.ctl, 1);
    const n = this.used;
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.data[((tail + i) >>> 0) % this.capacity]!;
    Atomics.store(this.ctl, 1, (tail + n) | 0);
    return out;
  }

  /** The head value a drainer waits on with Atomics.waitAsync(ctl, 0, head). */
  get head(): number {
    return Atomics.load(this.ctl, 0);
  }

  get control(): Int32Array {
    return this.ctl;
  }
}
