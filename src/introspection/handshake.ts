/**
 * The handshake that precedes KVMI on the socket. The VMM speaks first: a size-prefixed hello
 * (uuid, start time, name); the tool answers with a size-prefixed struct whose cookie_hash is
 * SHA-1 of the shared secret. Both structs may grow in later versions, so each side reads the
 * announced size, uses the fields it knows and skips the rest. The tool may send its first
 * command right after its answer: the bytes that follow a struct are handed back as `rest`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Duplex } from 'node:stream';

import { PayloadWriter, view } from './wire/bytes.js';
import { IntrospectionError } from './wire/errors.js';

/** The VMM → tool struct as nodevisor sends it. */
export const HELLO_SIZE = 96;
/** libkvmi needs the fields up to the name and refuses more than 64 KiB. */
export const HELLO_MIN_SIZE = 32;
export const HELLO_MAX_SIZE = 64 * 1024;
/** The tool → VMM struct: struct_size and a 20-byte cookie hash. */
export const TOOL_REPLY_SIZE = 24;
export const TOOL_REPLY_MAX_SIZE = 64 * 1024;
export const NAME_SIZE = 64;
export const COOKIE_HASH_SIZE = 20;
/** What the KVMI patches allowed a tool for the handshake. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

export interface Hello {
  /** The VM's UUID, 16 bytes (all zero when the VM has none). */
  uuid: Uint8Array;
  /** When the VM started, in milliseconds since the epoch. */
  startTime: bigint;
  name: string;
}

/** "12345678-9abc-def0-1234-56789abcdef0" → 16 bytes; undefined → zeros. */
export function parseUuid(uuid: string | undefined): Uint8Array {
  const out = new Uint8Array(16);
  if (uuid === undefined) return out;
  const hex = uuid.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new IntrospectionError('ERR_KVMI_HANDSHAKE', `not a UUID: ${uuid}`);
  for (let i = 0; i < 16; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function formatUuid(b: Uint8Array): string {
  const hex = Buffer.from(b).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/** At most 63 UTF-8 bytes, cut on a character boundary, so the NUL always fits. */
function nameBytes(name: string): Uint8Array {
  const all = new TextEncoder().encode(name);
  let n = Math.min(all.length, NAME_SIZE - 1);
  while (n > 0 && n < all.length && ((all[n] ?? 0) & 0xc0) === 0x80) n--;
  return all.subarray(0, n);
}

export function encodeHello(h: Hello): Uint8Array {
  if (h.uuid.length !== 16) throw new IntrospectionError('ERR_KVMI_HANDSHAKE', 'a UUID is 16 bytes');
  const name = new Uint8Array(NAME_SIZE);
  name.set(nameBytes(h.name));
  return new PayloadWriter(HELLO_SIZE).u32(HELLO_SIZE).raw(h.uuid).pad(4).s64(h.startTime).raw(name).done();
}

/** A hello of any accepted size: fields past its end read as zero, bytes past 96 are ignored. */
export function decodeHello(struct: Uint8Array): Hello {
  const b = new Uint8Array(HELLO_SIZE);
  b.set(struct.subarray(0, HELLO_SIZE));
  const name = b.subarray(32, 32 + NAME_SIZE);
  const nul = name.indexOf(0);
  return {
    uuid: b.slice(4, 20),
    startTime: view(b).getBigInt64(24, true),
    name: new TextDecoder().decode(name.subarray(0, nul < 0 ? NAME_SIZE : nul)),
  };
}

export function cookieHash(secret: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha1').update(secret).digest());
}

/** The tool's answer: SHA-1 of the secret, or zeros when it has none. */
export function encodeToolReply(secret?: Uint8Array): Uint8Array {
  const hash = secret === undefined ? new Uint8Array(COOKIE_HASH_SIZE) : cookieHash(secret);
  return new PayloadWriter(TOOL_REPLY_SIZE).u32(TOOL_REPLY_SIZE).raw(hash).done();
}

export function decodeToolReply(struct: Uint8Array): { cookieHash: Uint8Array } {
  return { cookieHash: struct.slice(4, 4 + COOKIE_HASH_SIZE) };
}

/** Whether a tool's answer proves it knows `key`; without a key any answer is accepted. */
export function toolAuthenticated(reply: { cookieHash: Uint8Array }, key: Uint8Array | undefined): boolean {
  if (key === undefined) return true;
  return timingSafeEqual(reply.cookieHash, cookieHash(key));
}

/**
 * Collects one size-prefixed struct from a byte stream: u32 struct_size (counting itself),
 * then struct_size - 4 bytes.
 */
export class SizedStructReader {
  readonly #min: number;
  readonly #max: number;
  readonly #what: string;
  #buf = new Uint8Array(0);

  constructor(what: string, min: number, max: number) {
    this.#what = what;
    this.#min = min;
    this.#max = max;
  }

  /** The whole struct and the bytes after it, once complete; throws on an unacceptable size. */
  push(chunk: Uint8Array): { struct: Uint8Array; rest: Uint8Array } | undefined {
    const buf = new Uint8Array(this.#buf.length + chunk.length);
    buf.set(this.#buf);
    buf.set(chunk, this.#buf.length);
    this.#buf = buf;
    if (buf.length < 4) return undefined;
    const size = view(buf).getUint32(0, true);
    if (size < this.#min || size > this.#max) {
      throw new IntrospectionError('ERR_KVMI_HANDSHAKE', `${this.#what}: struct_size ${size} outside ${this.#min}..${this.#max}`);
    }
    if (buf.length < size) return undefined;
    return { struct: buf.slice(0, size), rest: buf.slice(size) };
  }
}

/**
 * Reads one struct from `socket`. On success the socket is left paused with nothing consumed
 * past the struct except `rest`, so the next reader can take over without losing bytes.
 */
function readStruct(socket: Duplex, reader: SizedStructReader, timeoutMs: number, what: string): Promise<{ struct: Uint8Array; rest: Uint8Array }> {
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', onError);
      socket.pause();
    };
    const fail = (e: Error): void => {
      cleanup();
      reject(e);
    };
    const timer = setTimeout(() => fail(new IntrospectionError('ERR_KVMI_TIMEOUT', `no ${what} within ${timeoutMs} ms`)), timeoutMs);
    const onData = (chunk: Buffer): void => {
      try {
        const done = reader.push(chunk);
        if (done === undefined) return;
        cleanup();
        resolve(done);
      } catch (e) {
        fail(e as Error);
      }
    };
    const onClose = (): void => fail(new IntrospectionError('ERR_KVMI_CLOSED', `connection closed before the ${what}`));
    const onError = (e: Error): void => fail(new IntrospectionError('ERR_KVMI_CLOSED', `${what}: ${e.message}`));
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.once('error', onError);
    socket.resume();
  });
}

export interface VmHandshakeOptions {
  /** The secret the tool must prove it knows. */
  key?: Uint8Array;
  timeoutMs?: number;
}

/**
 * The VMM's side: sends the hello, waits for the tool's answer and checks its cookie hash.
 * Resolves with the bytes the tool sent after its answer (its first commands).
 */
export async function vmHandshake(socket: Duplex, hello: Hello, options: VmHandshakeOptions = {}): Promise<Uint8Array> {
  socket.write(encodeHello(hello));
  const reader = new SizedStructReader('tool handshake', TOOL_REPLY_SIZE, TOOL_REPLY_MAX_SIZE);
  const { struct, rest } = await readStruct(socket, reader, options.timeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS, 'tool handshake');
  if (!toolAuthenticated(decodeToolReply(struct), options.key)) {
    throw new IntrospectionError('ERR_KVMI_AUTH', 'the tool\'s cookie hash does not match the secret');
  }
  return rest;
}

export interface ToolHandshakeOptions {
  /** Sent as SHA-1(secret); a string is taken as UTF-8. */
  secret?: Uint8Array | string;
  timeoutMs?: number;
}

/** The tool's side: reads the VMM's hello and answers it. */
export async function toolHandshake(socket: Duplex, options: ToolHandshakeOptions = {}): Promise<{ hello: Hello; rest: Uint8Array }> {
  const reader = new SizedStructReader('VM handshake', HELLO_MIN_SIZE, HELLO_MAX_SIZE);
  const { struct, rest } = await readStruct(socket, reader, options.timeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS, 'VM handshake');
  const secret = typeof options.secret === 'string' ? new TextEncoder().encode(options.secret) : options.secret;
  socket.write(encodeToolReply(secret));
  return { hello: decodeHello(struct), rest };
}
