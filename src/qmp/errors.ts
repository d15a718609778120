/**
 * QMP's error classes and the one place where nodevisor's errors become them. Inside the VMM
 * errors carry stable codes (src/errors.ts); only the protocol edge speaks QMP classes, and a
 * stack trace never reaches a client.
 */
import { NodevisorError } from '../errors.js';

/** QEMU's QapiErrorClass values. */
export const QMP_ERROR_CLASSES = [
  'GenericError',
  'CommandNotFound',
  'DeviceNotActive',
  'DeviceNotFound',
  'KVMMissingCap',
] as const;

export type QmpErrorClass = (typeof QMP_ERROR_CLASSES)[number];

/** An error a QMP client sees as {"error": {"class", "desc"}}. */
export class QmpError extends Error {
  readonly class: QmpErrorClass;
  readonly desc: string;
  constructor(errorClass: QmpErrorClass, desc: string) {
    super(desc);
    this.name = 'QmpError';
    this.class = errorClass;
    this.desc = desc;
  }
}

/** A GenericError, the class of nearly every QEMU error. */
export function genericError(desc: string): QmpError {
  return new QmpError('GenericError', desc);
}

const MAX_DESC = 200;

/**
 * Anything a handler threw, as the client will see it: a QmpError as is, a NodevisorError by
 * its message (written for users), any other Error by its first line, shortened.
 */
export function toQmpError(e: unknown): QmpError {
  if (e instanceof QmpError) return e;
  if (e instanceof NodevisorError) return genericError(shorten(e.message));
  if (e instanceof Error && e.message) return genericError(`internal error: ${shorten(e.message)}`);
  return genericError('internal error');
}

function shorten(message: string): string {
  const line = message.split('\n', 1)[0] ?? '';
  return line.length > MAX_DESC ? `${line.slice(0, MAX_DESC)}…` : line;
}
