/**
 * QEMU's mux escapes on a terminal (chardev/char-mux.c): ctrl-a then a key is a command for
 * the VMM, not input for the guest. A pure byte-stream parser: the escape may be split across
 * reads. Keys nodevisor has no use for (s: commit disks, t: timestamps, b: break) are swallowed,
 * as QEMU swallows unknown ones.
 */

export const MUX_ESCAPE_CHAR = 0x01; // ctrl-a

export type MuxEvent =
  | { kind: 'input'; bytes: Uint8Array }
  | { kind: 'help' }
  | { kind: 'quit' }
  | { kind: 'monitor' };

const KEY_EVENTS: ReadonlyMap<number, MuxEvent> = new Map([
  [0x68, { kind: 'help' }], // h
  [0x3f, { kind: 'help' }], // ?
  [0x78, { kind: 'quit' }], // x
  [0x63, { kind: 'monitor' }], // c
]);

export class MuxEscape {
  private escaped = false;

  /** Splits `bytes` into guest input runs and commands, in order. */
  feed(bytes: Uint8Array): MuxEvent[] {
    const events: MuxEvent[] = [];
    let runStart = 0;
    const flushRun = (end: number): void => {
      if (end > runStart) events.push({ kind: 'input', bytes: bytes.slice(runStart, end) });
    };
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i] ?? 0;
      if (this.escaped) {
        this.escaped = false;
        // ctrl-a ctrl-a sends one ctrl-a: it starts the next input run.
        if (b === MUX_ESCAPE_CHAR) {
          runStart = i;
          continue;
        }
        const ev = KEY_EVENTS.get(b);
        if (ev !== undefined) events.push(ev);
        runStart = i + 1;
      } else if (b === MUX_ESCAPE_CHAR) {
        flushRun(i);
        this.escaped = true;
        runStart = i + 1;
      }
    }
    flushRun(bytes.length);
    return events;
  }
}

/** The `ctrl-a h` list, with QEMU's line layout ("\n\r" because the terminal is raw). */
export function muxHelpText(): string {
  const lines = [
    'C-a h    print this help',
    'C-a x    exit emulator',
    'C-a c    switch between console and monitor (there is no monitor)',
    'C-a C-a  sends C-a',
  ];
  return `\n\r${lines.map((l) => `${l}\n\r`).join('')}`;
}

/** What `ctrl-a x` prints before the VMM quits (QEMU prints "QEMU: Terminated"). */
export const MUX_TERMINATED_TEXT = 'nodevisor: Terminated\n\r';

/** What `ctrl-a c` prints: QEMU would switch to its monitor, nodevisor has none. */
export const MUX_NO_MONITOR_TEXT = '\n\rnodevisor: no monitor to switch to\n\r';
