/** errno numbers (x86-64 Linux) to their names, for error messages that say what failed. */
const NAMES: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 4: 'EINTR', 5: 'EIO', 6: 'ENXIO', 7: 'E2BIG', 9: 'EBADF', 11: 'EAGAIN',
  12: 'ENOMEM', 13: 'EACCES', 14: 'EFAULT', 16: 'EBUSY', 17: 'EEXIST', 19: 'ENODEV', 22: 'EINVAL',
  24: 'EMFILE', 25: 'ENOTTY', 28: 'ENOSPC', 34: 'ERANGE', 38: 'ENOSYS', 95: 'EOPNOTSUPP',
  32: 'EPIPE', 104: 'ECONNRESET', 111: 'ECONNREFUSED', 133: 'EHWPOISON',
};

export const EINTR = 4;
export const EAGAIN = 11;
export const EFAULT = 14;
export const EHWPOISON = 133;

export function errnoName(e: number): string {
  return NAMES[e] ?? `errno ${e}`;
}
