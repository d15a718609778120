/**
 * `-serial unix:PATH[,server=on|off][,wait=on|off]`.
 *
 * Server: listens on PATH and serves one client at a time, as QEMU does; a client that connects
 * meanwhile waits, unread, for its turn. Output while nobody is connected is dropped. With
 * wait=on (QEMU's default) opening waits for the first client. The socket file is made with the
 * process umask and removed on close. A stale socket at PATH is replaced, as QEMU does; unlike
 * QEMU, which unlinks whatever is at PATH, another kind of file is refused.
 * Client (server=off): connects to PATH; once the server goes, output is dropped.
 */
import { lstatSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { PendingWrites, type Chardev } from './chardev.js';
import { chardevError, strerror } from './host-error.js';

export interface UnixSocketChardevOptions {
  path: string;
  server: boolean;
  wait: boolean;
  /** Where the "waiting for connection" notice goes (a line without program name). */
  log: (line: string) => void;
}

/** How long `close` lets a connected client drain before cutting it off. */
const CLOSE_DRAIN_MS = 1000;

/** Removes a stale socket at `path`; refuses any other kind of file. */
function clearSocketPath(path: string): void {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw chardevError(`Failed to unlink socket ${path}: ${strerror(e)}`);
  }
  if (!isSocket) throw chardevError(`'${path}' exists and is not a socket: refusing to replace it`);
  try {
    unlinkSync(path);
  } catch (e) {
    throw chardevError(`Failed to unlink socket ${path}: ${strerror(e)}`);
  }
}

export async function openUnixSocketChardev(opts: UnixSocketChardevOptions): Promise<Chardev> {
  const inputs: Array<(bytes: Uint8Array) => void> = [];
  const pending = new PendingWrites();
  let current: Socket | undefined;
  /** Completions of writes to `current`, run if it closes before they finish. */
  let outstanding = new Set<() => void>();
  const queue: Socket[] = [];
  let server: Server | undefined;
  let firstClient: (() => void) | undefined;

  const serve = (sock: Socket): void => {
    current = sock;
    const mine = new Set<() => void>();
    outstanding = mine;
    sock.on('data', (data: Buffer) => {
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      for (const cb of inputs) cb(bytes);
    });
    sock.on('error', () => {}); // a client going away is not our error; 'close' follows
    sock.on('close', () => {
      for (const done of [...mine]) done();
      if (current !== sock) return;
      current = undefined;
      const next = queue.shift();
      if (next !== undefined) serve(next);
    });
    sock.resume();
    firstClient?.();
    firstClient = undefined;
  };

  if (opts.server) {
    clearSocketPath(opts.path);
    // pauseOnConnect: a waiting client's bytes stay unread until its turn.
    const srv = createServer({ pauseOnConnect: true }, (sock) => {
      if (current === undefined) {
        serve(sock);
        return;
      }
      queue.push(sock);
      sock.on('error', () => {});
      sock.on('close', () => {
        const i = queue.indexOf(sock);
        if (i >= 0) queue.splice(i, 1);
      });
    });
    server = srv;
    await new Promise<void>((resolve, reject) => {
      srv.once('error', (e) => reject(chardevError(`Failed to bind socket to ${opts.path}: ${strerror(e)}`)));
      srv.listen(opts.path, () => resolve());
    });
    srv.on('error', () => {});
    if (opts.wait) {
      opts.log(`info: nodevisor waiting for connection on: disconnected:unix:${opts.path},server=on`);
      await new Promise<void>((resolve) => {
        firstClient = resolve;
      });
    }
  } else {
    const sock = connect(opts.path);
    await new Promise<void>((resolve, reject) => {
      sock.once('error', (e) => reject(chardevError(`Failed to connect to '${opts.path}': ${strerror(e)}`)));
      sock.once('connect', () => resolve());
    });
    serve(sock);
  }

  const chardev: Chardev = {
    write(bytes) {
      const sock = current;
      if (sock === undefined || !sock.writable) return; // nobody listening: dropped, as QEMU
      const done = pending.start();
      const mine = outstanding;
      const finish = (): void => {
        mine.delete(finish);
        done();
      };
      mine.add(finish);
      sock.write(bytes, () => finish());
    },
    onInput(cb) {
      inputs.push(cb);
    },
    flush: () => pending.idle(),
    async close() {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        pending.idle(),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, CLOSE_DRAIN_MS);
        }),
      ]);
      clearTimeout(timer);
      const closing = server === undefined ? Promise.resolve() : new Promise<void>((resolve) => server?.close(() => resolve()));
      for (const sock of [current, ...queue]) sock?.destroy();
      queue.length = 0;
      current = undefined;
      await closing;
      if (opts.server) {
        // libuv unlinks the path on close; make sure, without touching anything that is not ours.
        try {
          if (lstatSync(opts.path).isSocket()) unlinkSync(opts.path);
        } catch {
          // Already gone.
        }
      }
    },
  };
  return chardev;
}
