import { NodevisorError } from '../errors.js';
import { errnoName } from './errno.js';

/** A failed ioctl or system call: carries the call's name and errno, e.g. "KVM_RUN: EFAULT". */
export class KvmError extends NodevisorError {
  readonly call: string;
  readonly errno: number;
  constructor(call: string, errno: number, detail?: string) {
    super('ERR_KVM_IOCTL', `${call} failed: ${errnoName(errno)}${detail ? ` (${detail})` : ''}`);
    this.name = 'KvmError';
    this.call = call;
    this.errno = errno;
  }
  get errnoName(): string {
    return errnoName(this.errno);
  }
}
