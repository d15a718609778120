/**
 * Reading `-object secret,file=` for main.ts, before the machine is made: parse-args reads no
 * files, so a file secret reaches main.ts as a SecretFile. The errors are QEMU 7.2's when it
 * creates the secret (glib's texts).
 */
import { closeSync, openSync, readFileSync } from 'node:fs';
import { OptionError } from '../errors.js';
import { strerror } from '../kvm/libc.js';
import type { MachineConfig } from '../machine/config.js';
import { PROGRAM_NAME } from './help.js';
import { OptsSyntaxError } from './opts-error.js';
import { secretBytes, type SecretFile } from './secret.js';

function errnoText(e: unknown): string {
  const errno = (e as NodeJS.ErrnoException).errno;
  return typeof errno === 'number' ? strerror(-errno) : String(e);
}

/** Reads a `file=` secret, failing as QEMU does ("Unable to read PATH: ..."). */
export function readSecretFile(f: SecretFile): Uint8Array {
  const unable = (why: string): never => {
    throw new OptionError(`${PROGRAM_NAME}: Unable to read ${f.path}: ${why}`);
  };
  let fd: number;
  try {
    fd = openSync(f.path, 'r');
  } catch (e) {
    return unable(`Failed to open file “${f.path}”: ${errnoText(e)}`);
  }
  let content: Buffer;
  try {
    content = readFileSync(fd);
  } catch (e) {
    return unable(`Error reading file “${f.path}”: ${errnoText(e)}`);
  } finally {
    closeSync(fd);
  }
  try {
    return secretBytes(new Uint8Array(content), f.format); // a plain Uint8Array, not a Buffer
  } catch (e) {
    if (e instanceof OptsSyntaxError) throw new OptionError(`${PROGRAM_NAME}: ${e.message}`);
    throw e;
  }
}

/**
 * Reads every `file=` secret in order (QEMU fails on an unreadable one even when nothing uses
 * it) and puts the introspection key's bytes into `config`. Throws an OptionError to print.
 */
export function loadSecretFiles(
  config: MachineConfig,
  files: readonly SecretFile[],
  introspectionKey: string | undefined,
): void {
  for (const f of files) {
    const bytes = readSecretFile(f);
    if (f.id === introspectionKey && config.introspection !== undefined) config.introspection.key = bytes;
  }
}
