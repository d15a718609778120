/**
 * Connects to a unix stream socket with plain libc calls, so that nodevisor owns the
 * descriptor: the KVMI socket thread reads and writes it directly, outside Node's event loop.
 */
import { errnoName } from '../../kvm/errno.js';
import { AF_UNIX, close, connect, errno, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_STREAM, socket } from '../../kvm/libc.js';
import { IntrospectionError } from '../wire/errors.js';

/** sizeof(struct sockaddr_un): sa_family_t, then sun_path[108]. */
const SOCKADDR_UN_SIZE = 110;
const SUN_PATH_MAX = 107;

/**
 * A connected, non-blocking, close-on-exec socket to `path`. A unix socket connects at once
 * or not at all (EAGAIN when the listener's backlog is full), so this never waits.
 */
export function connectUnix(path: string): number {
  const name = Buffer.from(path, 'utf8');
  if (name.length > SUN_PATH_MAX || name.includes(0)) {
    throw new IntrospectionError('ERR_KVMI_CLOSED', `cannot connect: ${path}: not a usable socket path (at most ${SUN_PATH_MAX} bytes)`);
  }
  const addr = new Uint8Array(SOCKADDR_UN_SIZE);
  new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
  addr.set(name, 2);
  const fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new IntrospectionError('ERR_KVMI_CLOSED', `cannot connect: socket ${errnoName(errno())}`);
  if (connect(fd, addr, 2 + name.length + 1) < 0) {
    const e = errno();
    close(fd);
    throw new IntrospectionError('ERR_KVMI_CLOSED', `cannot connect: connect ${errnoName(e)} ${path}`);
  }
  return fd;
}
