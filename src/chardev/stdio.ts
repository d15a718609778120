/**
 * `-serial stdio` and `-nographic`'s `mon:stdio`: the guest's serial line on this terminal.
 *
 * A terminal on stdin is put in raw mode and restored on close and at process exit, however the
 * process ends: the 'exit' event covers normal exits, process.exit and uncaught exceptions, and
 * for SIGINT/SIGTERM Node itself resets the terminal before dying (adding our own signal
 * listeners would take that default death away from the VMM).
 *
 * With `mux` (QEMU's mon:stdio), input goes through the ctrl-a escapes and ctrl-c is a byte for
 * the guest. Without it, as QEMU's plain stdio (signal=on), ctrl-c and ctrl-\ still signal this
 * process, which raw mode would otherwise turn into bytes.
 *
 * Output goes through the stdout stream (synchronous on Linux for files, pipes and terminals)
 * and each write's completion is counted, so `flush` really means "on the fd"; writeSync(1) was
 * the alternative, but it throws EAGAIN on a non-blocking pipe.
 */
import { chardevError } from './host-error.js';
import { PendingWrites, type Chardev } from './chardev.js';
import { MUX_NO_MONITOR_TEXT, MUX_TERMINATED_TEXT, MuxEscape, muxHelpText } from './mux-escape.js';

export interface TtyInput extends NodeJS.ReadableStream {
  isTTY?: boolean;
  setRawMode?: (mode: boolean) => unknown;
}

export interface StdioChardevOptions {
  /** QEMU's mux: ctrl-a escapes, ctrl-c to the guest. */
  mux: boolean;
  /** `ctrl-a x`: called once "nodevisor: Terminated" has reached the output. */
  onQuit: () => void;
  /** Defaults to process.stdin / process.stdout; tests pass their own streams. */
  input?: TtyInput;
  output?: NodeJS.WritableStream;
}

const VINTR = 0x03; // ctrl-c
const VQUIT = 0x1c; // ctrl-backslash

/** The terminal currently in raw mode, restored at exit. One stdio chardev at a time. */
let rawInput: TtyInput | undefined;
let inUse = false;
let exitHookInstalled = false;

function restoreTerminal(): void {
  const input = rawInput;
  rawInput = undefined;
  try {
    input?.setRawMode?.(false);
  } catch {
    // The terminal may already be gone (hang-up); nothing left to restore.
  }
}

export function openStdioChardev(opts: StdioChardevOptions): Chardev {
  if (inUse) throw chardevError('cannot use stdio by multiple character devices');
  inUse = true;
  const input = opts.input ?? process.stdin;
  const output = opts.output ?? process.stdout;
  const pending = new PendingWrites();
  const receivers: Array<(bytes: Uint8Array) => void> = [];
  const escape = new MuxEscape();
  const isTty = input.isTTY === true && typeof input.setRawMode === 'function';

  if (isTty) {
    input.setRawMode?.(true);
    rawInput = input;
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.on('exit', restoreTerminal);
    }
  }

  const write = (bytes: Uint8Array): void => {
    const done = pending.start();
    // A copy: the caller may reuse its buffer before the stream is done with ours.
    output.write(Buffer.from(bytes), () => done());
  };
  const deliver = (bytes: Uint8Array): void => {
    for (const cb of receivers) cb(bytes);
  };

  const onData = (chunk: Buffer | string): void => {
    const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (!opts.mux) {
      if (isTty) {
        for (const b of bytes) {
          if (b === VINTR) process.kill(process.pid, 'SIGINT');
          if (b === VQUIT) process.kill(process.pid, 'SIGQUIT');
        }
        const rest = bytes.filter((b) => b !== VINTR && b !== VQUIT);
        if (rest.length > 0) deliver(rest);
        return;
      }
      deliver(bytes);
      return;
    }
    for (const ev of escape.feed(bytes)) {
      switch (ev.kind) {
        case 'input':
          deliver(ev.bytes);
          break;
        case 'help':
          write(Buffer.from(muxHelpText()));
          break;
        case 'monitor':
          write(Buffer.from(MUX_NO_MONITOR_TEXT));
          break;
        case 'quit':
          write(Buffer.from(MUX_TERMINATED_TEXT));
          // Quit once the notice is out: the VMM may exit at once.
          void pending.idle().then(() => opts.onQuit());
          break;
      }
    }
  };
  input.on('data', onData);

  let closed = false;
  return {
    write(bytes) {
      if (!closed) write(bytes);
    },
    onInput(cb) {
      receivers.push(cb);
    },
    flush: () => pending.idle(),
    async close() {
      if (closed) return;
      closed = true;
      input.off('data', onData);
      input.pause();
      if (rawInput === input) restoreTerminal();
      inUse = false;
      await pending.idle();
    },
  };
}
