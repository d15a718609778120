/** Opens the host end of COM1 for a SerialBackend from the machine configuration. */
import type { SerialBackend } from '../machine/config.js';
import type { Chardev } from './chardev.js';
import { openFileChardev } from './file.js';
import { openNullChardev } from './null.js';
import { openStdioChardev, type StdioChardevOptions } from './stdio.js';
import { openUnixSocketChardev } from './unix-socket.js';

export interface OpenChardevOptions {
  /** stdio only: QEMU's mux (`-nographic` or `mon:stdio`, RunOptions.serialMux). */
  mux?: boolean;
  /** stdio with mux: `ctrl-a x`. Defaults to exiting with status 0, as QEMU does. */
  onQuit?: () => void;
  /** Notices such as "waiting for connection" (a line without program name); default: stderr. */
  log?: (line: string) => void;
  /** stdio only: streams in place of process.stdin / process.stdout. */
  input?: StdioChardevOptions['input'];
  output?: StdioChardevOptions['output'];
}

/**
 * Throws a NodevisorError worded as QEMU's (e.g. "Could not open '/x': No such file or
 * directory"); the caller prefixes `nodevisor: -serial DEV: ` as QEMU places it.
 */
export async function openChardev(backend: SerialBackend, options: OpenChardevOptions = {}): Promise<Chardev> {
  const log = options.log ?? ((line: string) => process.stderr.write(`nodevisor: ${line}\n`));
  switch (backend.kind) {
    case 'stdio': {
      const stdio: StdioChardevOptions = {
        mux: options.mux ?? false,
        onQuit: options.onQuit ?? (() => process.exit(0)),
      };
      if (options.input !== undefined) stdio.input = options.input;
      if (options.output !== undefined) stdio.output = options.output;
      return openStdioChardev(stdio);
    }
    case 'file':
      return openFileChardev(backend.path);
    case 'null':
    case 'none':
      return openNullChardev();
    case 'unix':
      return openUnixSocketChardev({ path: backend.path, server: backend.server, wait: backend.wait, log });
  }
}
