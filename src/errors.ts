/**
 * Errors with stable codes. Adapters (CLI, QMP, introspection) map codes to what their
 * clients expect; a stack trace never reaches a user or a client.
 */
export type ErrorCode =
  | 'ERR_KVM_UNAVAILABLE'
  | 'ERR_KVM_IOCTL'
  | 'ERR_SYSCALL'
  | 'ERR_BAD_OPTION'
  | 'ERR_BAD_KERNEL'
  | 'ERR_DOES_NOT_FIT'
  | 'ERR_BAD_MEMORY_SIZE'
  | 'ERR_BUS_OVERLAP'
  | 'ERR_BAD_STATE'
  | 'ERR_GUEST_MEMORY'
  /** An -accel property the host or nodevisor cannot honour (QEMU reports it at the -accel option). */
  | 'ERR_ACCEL';

export class NodevisorError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'NodevisorError';
    this.code = code;
  }
}

/** A command-line or configuration problem: printed as one QEMU-style line, exit status 1. */
export class OptionError extends NodevisorError {
  constructor(message: string) {
    super('ERR_BAD_OPTION', message);
    this.name = 'OptionError';
  }
}

/** A kernel/initrd image that cannot be loaded; the message names the file and the reason. */
export class ImageError extends NodevisorError {
  readonly file: string;
  constructor(file: string, reason: string, code: ErrorCode = 'ERR_BAD_KERNEL') {
    super(code, `${file}: ${reason}`);
    this.name = 'ImageError';
    this.file = file;
  }
}
