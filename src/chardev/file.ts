/**
 * `-serial file:PATH`: output to a file, truncated on open as QEMU does (O_TRUNC, mode 0666 less
 * the umask). Writes are synchronous: a regular file never makes the caller wait long, and a
 * write that has returned is in the file, so nothing is lost at exit.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import type { Chardev } from './chardev.js';
import { chardevError, strerror } from './host-error.js';

export function openFileChardev(path: string): Chardev {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'w', 0o666);
  } catch (e) {
    throw chardevError(`Could not open '${path}': ${strerror(e)}`);
  }
  return {
    write(bytes) {
      if (fd === undefined) return;
      let done = 0;
      while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
    },
    onInput: () => {},
    flush: () => Promise.resolve(),
    close() {
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
      return Promise.resolve();
    },
  };
}
