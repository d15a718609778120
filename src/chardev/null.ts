import type { Chardev } from './chardev.js';

/** `-serial null` (and `none`): output is dropped, there is never input. */
export function openNullChardev(): Chardev {
  return {
    write: () => {},
    onInput: () => {},
    flush: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
}
