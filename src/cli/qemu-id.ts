/**
 * The `id=` of a QemuOpts option (`-chardev`, `-device`, `-object`): QEMU takes the first
 * `id=` item, checks it is an identifier, and only then reads the other items.
 */
import { OptsSyntaxError } from './opts-error.js';

const ID_PATTERN = /^[A-Za-z][A-Za-z0-9_.-]*$/;

/** The first `id=` item's value (`,,` being a comma), or undefined when there is none. */
export function firstId(text: string): string | undefined {
  let i = 0;
  while (i < text.length) {
    let item = '';
    while (i < text.length) {
      if (text[i] === ',') {
        if (text[i + 1] !== ',') break;
        i++;
      }
      item += text[i];
      i++;
    }
    i++;
    if (item.startsWith('id=')) return item.slice(3);
  }
  return undefined;
}

/** Throws QEMU's error for an id that is not an identifier. */
export function checkId(id: string | undefined): void {
  if (id === undefined || ID_PATTERN.test(id)) return;
  // The second line is a hint: QEMU prints it without the location.
  throw new OptsSyntaxError(
    "Parameter 'id' expects an identifier\nIdentifiers consist of letters, digits, '-', '.', '_', starting with a letter.",
  );
}
