/**
 * Creating `-object secret` and `-object introspection` once the command line is read, in
 * QEMU 7.2's stages: secrets with the early objects (before any chardev), introspection with
 * the late ones (after the accelerator, before the monitors, as an object with a chardev is
 * in QEMU). An introspection object becomes an IntrospectionConfig: the client socket of its
 * chardev (nodevisor connects to a listening tool) and the bytes of its secret.
 */
import type { IntrospectionConfig } from '../machine/config.js';
import type { CreatedChardev } from './monitor.js';
import type { PendingIntrospection, PendingSecret } from './object.js';
import { OptsSyntaxError } from './opts-error.js';
import { secretBytes, type SecretFile } from './secret.js';

/** A secret once created: its bytes, or the file main.ts reads them from. */
export type CreatedSecret = { id: string; bytes: Uint8Array } | { id: string; file: SecretFile };

/** Creates a secret as QEMU does: exactly one of data and file; base64 data decoded now. */
export function createSecret(s: PendingSecret): CreatedSecret {
  if (s.data !== undefined && s.file !== undefined) throw new OptsSyntaxError("'file' and 'data' are mutually exclusive");
  if (s.file !== undefined) return { id: s.id, file: { id: s.id, path: s.file, format: s.format } };
  if (s.data === undefined) throw new OptsSyntaxError("Either 'file' or 'data' must be provided");
  return { id: s.id, bytes: secretBytes(s.data, s.format) };
}

export interface CreatedIntrospection {
  config: IntrospectionConfig;
  /** The id of the file secret whose bytes main.ts puts into `config.key`. */
  keyFile?: string;
}

/**
 * Creates an introspection object. `taken` holds the chardevs already in use by another
 * frontend; this one's is added. Errors are QEMU-style, for the object's location.
 */
export function createIntrospection(
  o: PendingIntrospection,
  chardevs: ReadonlyMap<string, CreatedChardev>,
  secrets: ReadonlyMap<string, CreatedSecret>,
  objectIds: ReadonlySet<string>,
  taken: Set<string>,
): CreatedIntrospection {
  const c = chardevs.get(o.chardev);
  if (c === undefined) throw new OptsSyntaxError(`Property 'introspection.chardev' can't find value '${o.chardev}'`);
  if (taken.has(o.chardev)) throw new OptsSyntaxError(`Device '${o.chardev}' is in use`);
  if (c.kind !== 'unix') {
    throw new OptsSyntaxError(
      `chardev '${o.chardev}' is not a unix socket: the introspection tool is reached through -chardev socket,path=PATH`,
    );
  }
  if (c.server) {
    throw new OptsSyntaxError(
      `chardev '${o.chardev}' is a server socket: nodevisor connects to the listening introspection tool, so it needs server=off`,
    );
  }
  const config: IntrospectionConfig = {
    id: o.id,
    path: c.path,
    handshakeTimeoutMs: o.handshakeTimeoutSeconds * 1000,
    unhookTimeoutMs: o.unhookTimeoutSeconds * 1000,
    dialect: o.dialect,
  };
  // QEMU's reconnect=0 is no reconnecting at all.
  if (c.reconnect !== undefined && c.reconnect > 0) config.reconnect = c.reconnect;
  let keyFile: string | undefined;
  if (o.key !== undefined) {
    const secret = secrets.get(o.key);
    if (secret === undefined) {
      if (objectIds.has(o.key)) throw new OptsSyntaxError(`Object with id '${o.key}' is not a secret`);
      throw new OptsSyntaxError(`No secret with id '${o.key}'`);
    }
    if ('bytes' in secret) config.key = secret.bytes;
    else keyFile = secret.id;
  }
  taken.add(o.chardev);
  return keyFile === undefined ? { config } : { config, keyFile };
}
