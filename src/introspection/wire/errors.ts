/**
 * KVMI error numbers and the error classes both ends use. Inside nodevisor an error carries a
 * stable name ('EINVAL', 'EOPNOTSUPP', ...); only the wire sees the numbers, which are KVM's
 * (<linux/kvm_para.h>): the errno values, except ENOSYS which is 1000, sent negated.
 */
export const KVMI_ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  E2BIG: 7,
  EAGAIN: 11,
  ENOMEM: 12,
  EFAULT: 14,
  EBUSY: 16,
  EINVAL: 22,
  EOPNOTSUPP: 95,
  ENOSYS: 1000,
} as const;

export type KvmiErrorName = keyof typeof KVMI_ERRNO;

const NAME_BY_NUMBER = new Map<number, KvmiErrorName>(
  (Object.keys(KVMI_ERRNO) as KvmiErrorName[]).map((name) => [KVMI_ERRNO[name], name]),
);

/** The value of kvmi_error_code.err for this error (negative). */
export function errorNumber(name: KvmiErrorName): number {
  return -KVMI_ERRNO[name];
}

/** The name of a (negative) wire error number, or undefined for a number KVMI never sends. */
export function errorName(err: number): KvmiErrorName | undefined {
  return NAME_BY_NUMBER.get(-err);
}

/**
 * A command failed with a KVMI error: thrown by codecs and target methods on the VM side (the
 * session answers with its number) and by the client when a reply carries one.
 */
export class KvmiError extends Error {
  readonly code: KvmiErrorName;
  constructor(code: KvmiErrorName, message?: string) {
    super(message ?? code);
    this.name = 'KvmiError';
    this.code = code;
  }

  /** The number on the wire: -22 for EINVAL. */
  get errno(): number {
    return errorNumber(this.code);
  }
}

export type IntrospectionErrorCode =
  /** The peer broke the framing or the message rules: the connection is closed. */
  | 'ERR_KVMI_PROTOCOL'
  /** The handshake was malformed or too large. */
  | 'ERR_KVMI_HANDSHAKE'
  /** The tool's cookie hash did not match SHA-1 of the secret. */
  | 'ERR_KVMI_AUTH'
  /** The peer did not answer in time. */
  | 'ERR_KVMI_TIMEOUT'
  /** The connection is gone. */
  | 'ERR_KVMI_CLOSED'
  /** A reply carried an error number KVMI does not define. */
  | 'ERR_KVMI_UNKNOWN_ERROR';

/** Everything that is not a KVMI error number: broken peers, timeouts, closed connections. */
export class IntrospectionError extends Error {
  readonly code: IntrospectionErrorCode;
  constructor(code: IntrospectionErrorCode, message: string) {
    super(message);
    this.name = 'IntrospectionError';
    this.code = code;
  }
}

/** Shorthand for the error every codec throws on a bad size or non-zero padding. */
export function invalid(message: string): KvmiError {
  return new KvmiError('EINVAL', message);
}
