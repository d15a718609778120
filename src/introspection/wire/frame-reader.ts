/**
 * Cuts a byte stream into KVMI messages. A stream socket delivers bytes, not messages: one
 * message may arrive over several reads and one read may carry several messages, so the
 * reader keeps what it has not yet used and hands out whole frames only.
 */
import { IntrospectionError } from './errors.js';
import { KVMI_HEADER_SIZE, KVMI_MAX_PAYLOAD, type Frame } from './header.js';

const EMPTY = new Uint8Array(0);

export class FrameReader {
  #pending: Uint8Array = EMPTY;
  readonly #maxPayload: number;

  constructor(maxPayload = KVMI_MAX_PAYLOAD) {
    this.#maxPayload = maxPayload;
  }

  /** Bytes received but not yet part of a whole frame. */
  get buffered(): number {
    return this.#pending.length;
  }

  /**
   * Adds bytes and returns every frame now complete, in order. A header announcing more than
   * the maximum payload throws ERR_KVMI_PROTOCOL: the stream cannot be trusted after it.
   */
  push(chunk: Uint8Array): Frame[] {
    let buf = chunk;
    if (this.#pending.length > 0) {
      buf = new Uint8Array(this.#pending.length + chunk.length);
      buf.set(this.#pending);
      buf.set(chunk, this.#pending.length);
    }
    const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const frames: Frame[] = [];
    let at = 0;
    while (buf.length - at >= KVMI_HEADER_SIZE) {
      // struct kvmi_msg_hdr {u16 id; u16 size; u32 seq}
      const id = v.getUint16(at, true);
      const size = v.getUint16(at + 2, true);
      const seq = v.getUint32(at + 4, true);
      if (size > this.#maxPayload) {
        this.#pending = new Uint8Array(0);
        throw new IntrospectionError('ERR_KVMI_PROTOCOL', `message ${id} (seq ${seq}) announces ${size} bytes, more than ${this.#maxPayload}`);
      }
      const end = at + KVMI_HEADER_SIZE + size;
      if (end > buf.length) break;
      // A copy (never Buffer#slice, which shares): the caller may keep a frame after the
      // socket's buffer is reused.
      frames.push({ id, size, seq, payload: new Uint8Array(buf.subarray(at + KVMI_HEADER_SIZE, end)) });
      at = end;
    }
    this.#pending = at === buf.length ? EMPTY : new Uint8Array(buf.subarray(at));
    return frames;
  }
}
