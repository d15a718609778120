/**
 * struct kvmi_msg_hdr {u16 id; u16 size; u32 seq} and the two envelopes built on it: a whole
 * message (header + payload, sent in one write) and a command reply (header echoing the
 * command's id and seq, then kvmi_error_code {s32 err; u32 padding}, then data when err is 0).
 */
import { PayloadReader, view } from './bytes.js';
import { IntrospectionError, invalid } from './errors.js';

export const KVMI_HEADER_SIZE = 8;
/** KVMI_MSG_SIZE: two pages minus the header. */
export const KVMI_MAX_PAYLOAD = 8192 - KVMI_HEADER_SIZE;
export const KVMI_ERROR_CODE_SIZE = 8;
/** The most data a reply can carry after its error code. */
export const KVMI_MAX_REPLY_DATA = KVMI_MAX_PAYLOAD - KVMI_ERROR_CODE_SIZE;

export interface MessageHeader {
  id: number;
  /** Payload bytes after the header. */
  size: number;
  seq: number;
}

/** A received message: its header and exactly `size` bytes of payload. */
export interface Frame extends MessageHeader {
  payload: Uint8Array;
}

/** Header and payload in one buffer, ready for a single write. */
export function encodeMessage(id: number, seq: number, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  if (payload.length > KVMI_MAX_PAYLOAD) {
    throw new IntrospectionError('ERR_KVMI_PROTOCOL', `message ${id}: ${payload.length} bytes exceed ${KVMI_MAX_PAYLOAD}`);
  }
  const out = new Uint8Array(KVMI_HEADER_SIZE + payload.length);
  const v = view(out);
  v.setUint16(0, id, true);
  v.setUint16(2, payload.length, true);
  v.setUint32(4, seq >>> 0, true);
  out.set(payload, KVMI_HEADER_SIZE);
  return out;
}

/** A command reply: err 0 with data, or a negative error number alone. One copy of the data. */
export function encodeReply(id: number, seq: number, err: number, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const body = err === 0 ? data : new Uint8Array(0);
  const size = KVMI_ERROR_CODE_SIZE + body.length;
  if (size > KVMI_MAX_PAYLOAD) {
    throw new IntrospectionError('ERR_KVMI_PROTOCOL', `message ${id}: ${size} bytes exceed ${KVMI_MAX_PAYLOAD}`);
  }
  const out = new Uint8Array(KVMI_HEADER_SIZE + size);
  const v = view(out);
  v.setUint16(0, id, true);
  v.setUint16(2, size, true);
  v.setUint32(4, seq >>> 0, true);
  v.setInt32(KVMI_HEADER_SIZE, err, true);
  out.set(body, KVMI_HEADER_SIZE + KVMI_ERROR_CODE_SIZE);
  return out;
}

export interface DecodedReply {
  /** 0 or a negative KVMI error number. */
  err: number;
  data: Uint8Array;
}

/** The payload of a reply; an error reply must be exactly its 8-byte error code. */
export function decodeReply(payload: Uint8Array): DecodedReply {
  const r = new PayloadReader(payload);
  const err = r.s32();
  r.padding(4);
  if (err !== 0 && r.remaining !== 0) throw invalid(`error reply ${err} carries ${r.remaining} data bytes`);
  return { err, data: r.bytes(r.remaining) };
}
