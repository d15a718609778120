import { getSystemErrorMap } from 'node:util';
import { NodevisorError } from '../errors.js';

/** strerror()'s wording for a Node system error: ENOENT → "No such file or directory". */
export function strerror(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const known = typeof err.errno === 'number' ? getSystemErrorMap().get(err.errno)?.[1] : undefined;
  const reason = known ?? (typeof err.message === 'string' ? err.message : String(e));
  return reason.charAt(0).toUpperCase() + reason.slice(1);
}

/** A host-side chardev failure, worded as QEMU's (the caller adds `nodevisor: -serial DEV: `). */
export function chardevError(message: string): NodevisorError {
  return new NodevisorError('ERR_SYSCALL', message);
}
