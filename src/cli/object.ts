/**
 * `-object TYPE,id=ID,...`, read when it is met, as QEMU 7.2 reads it: the id first (an
 * identifier, not used by another -object), then the type, help, the members in the type's
 * own order, and last any member the type lacks. nodevisor has two types: QEMU's `secret`
 * and its own `introspection` (QEMU 7.2 has none; its errors are worded in QEMU's style).
 * Objects are created later, in parse-args' finish: secrets early, introspection late.
 */
import { OptsSyntaxError } from './opts-error.js';
import { propertyLine } from './property-help.js';
import { checkId, firstId } from './qemu-id.js';
import { parseEnumProperty, parseUintProperty } from './qemu-values.js';
import { isHelpOption, parseQemuOpts } from './qemu-opts.js';
import type { SecretFormat } from './secret.js';

export interface PendingSecret {
  type: 'secret';
  id: string;
  loc: string;
  data: string | undefined;
  file: string | undefined;
  format: SecretFormat;
}

export type IntrospectionDialect = 'v7' | 'rfc-v5';

export interface PendingIntrospection {
  type: 'introspection';
  id: string;
  loc: string;
  /** The `-chardev socket` the introspection tool listens on. */
  chardev: string;
  /** The `-object secret` that authenticates it. */
  key: string | undefined;
  handshakeTimeoutSeconds: number;
  unhookTimeoutSeconds: number;
  dialect: IntrospectionDialect;
}

export type PendingObject = PendingSecret | PendingIntrospection;

export type ObjectOption = { kind: 'object'; object: PendingObject } | { kind: 'help'; text: string };

export const DEFAULT_HANDSHAKE_TIMEOUT_SECONDS = 10;
export const DEFAULT_UNHOOK_TIMEOUT_SECONDS = 60;

/** QEMU 7.2's user-creatable types (`-object help`) that nodevisor does not offer. */
const QEMU_ONLY_TYPES: ReadonlySet<string> = new Set(
  ('authz-list authz-list-file authz-simple can-bus can-host-socketcan colo-compare cryptodev-backend ' +
    'cryptodev-backend-builtin cryptodev-vhost-user dbus-vmstate filter-buffer filter-dump filter-mirror ' +
    'filter-redirector filter-replay filter-rewriter input-barrier input-linux iothread main-loop ' +
    'memory-backend-file memory-backend-memfd memory-backend-ram pr-manager-helper qtest rng-builtin ' +
    'rng-egd rng-random secret_keyring sev-guest thread-context throttle-group tls-cipher-suites ' +
    'tls-creds-anon tls-creds-psk tls-creds-x509 x-remote-object').split(' '),
);

/** Members QEMU's secret has that nodevisor does not implement (AES-encrypted secrets). */
const SECRET_QEMU_ONLY = ['keyid', 'iv'];

/** Members not read by the type, in command-line order: QEMU names the first. */
function refuseOthers(values: ReadonlyMap<string, string>, known: readonly string[]): void {
  for (const k of values.keys()) {
    if (!known.includes(k)) throw new OptsSyntaxError(`Invalid parameter '${k}'`);
  }
}

function objectListText(): string {
  return 'List of user creatable objects:\n  introspection\n  secret\n';
}

function secretHelpText(): string {
  return `secret options:\n${propertyLine('data', 'string')}${propertyLine('file', 'string')}${propertyLine('format', 'QCryptoSecretFormat')}`;
}

function introspectionHelpText(): string {
  return (
    'introspection options:\n' +
    propertyLine('chardev', 'string', 'the -chardev socket,path= the introspection tool listens on') +
    propertyLine('dialect', 'IntrospectionDialect', 'message numbering: v7 (libkvmi) or rfc-v5 (default: v7)') +
    propertyLine('handshake-timeout', 'uint32', `seconds the tool has to answer the handshake (default: ${DEFAULT_HANDSHAKE_TIMEOUT_SECONDS})`) +
    propertyLine('key', 'string', 'id of the -object secret the tool must prove it knows') +
    propertyLine('unhook-timeout', 'uint32', `seconds the tool has to let go when asked to unhook (default: ${DEFAULT_UNHOOK_TIMEOUT_SECONDS})`)
  );
}

/**
 * Reads an `-object` argument. `ids`: the ids of the `-object`s before it. `warnings` gets
 * QEMU's short-form boolean warnings.
 */
export function parseObjectOption(text: string, loc: string, ids: ReadonlySet<string>, warnings: string[]): ObjectOption {
  const id = firstId(text);
  checkId(id);
  if (id !== undefined && ids.has(id)) throw new OptsSyntaxError(`Duplicate ID '${id}' for object`);
  const values = parseQemuOpts(text, 'qom-type', undefined, warnings).values;
  const type = values.get('qom-type');
  if (type === undefined) throw new OptsSyntaxError("Parameter 'qom-type' is missing");
  if (isHelpOption(type)) return { kind: 'help', text: objectListText() };
  if (type !== 'secret' && type !== 'introspection') {
    if (QEMU_ONLY_TYPES.has(type)) throw new OptsSyntaxError(`object type '${type}' is not supported by nodevisor`);
    throw new OptsSyntaxError(`Parameter 'qom-type' does not accept value '${type}'`);
  }
  if (values.has('help') || values.has('?')) {
    return { kind: 'help', text: type === 'secret' ? secretHelpText() : introspectionHelpText() };
  }
  if (id === undefined) throw new OptsSyntaxError("Parameter 'id' is missing");
  values.delete('qom-type');
  return { kind: 'object', object: type === 'secret' ? readSecret(id, loc, values) : readIntrospection(id, loc, values) };
}

/** QEMU's secret members, in its order: format, keyid, iv, data, file. */
function readSecret(id: string, loc: string, values: ReadonlyMap<string, string>): PendingSecret {
  const formatText = values.get('format');
  const format = formatText === undefined ? 'raw' : parseEnumProperty('format', formatText, ['raw', 'base64'] as const);
  for (const k of SECRET_QEMU_ONLY) {
    if (values.has(k)) throw new OptsSyntaxError(`parameter '${k}' is not supported by nodevisor`);
  }
  refuseOthers(values, ['format', 'data', 'file']);
  return { type: 'secret', id, loc, data: values.get('data'), file: values.get('file'), format };
}

const INTROSPECTION_MEMBERS = ['chardev', 'key', 'handshake-timeout', 'unhook-timeout', 'dialect'];

function readIntrospection(id: string, loc: string, values: ReadonlyMap<string, string>): PendingIntrospection {
  const chardev = values.get('chardev');
  if (chardev === undefined) throw new OptsSyntaxError("Parameter 'chardev' is missing");
  const seconds = (name: string, fallback: number): number => {
    const text = values.get(name);
    return text === undefined ? fallback : parseUintProperty(name, text, 32, 'object');
  };
  const handshakeTimeoutSeconds = seconds('handshake-timeout', DEFAULT_HANDSHAKE_TIMEOUT_SECONDS);
  const unhookTimeoutSeconds = seconds('unhook-timeout', DEFAULT_UNHOOK_TIMEOUT_SECONDS);
  const dialectText = values.get('dialect');
  const dialect = dialectText === undefined ? 'v7' : parseEnumProperty('dialect', dialectText, ['v7', 'rfc-v5'] as const);
  refuseOthers(values, INTROSPECTION_MEMBERS);
  return {
    type: 'introspection', id, loc, chardev, key: values.get('key'), handshakeTimeoutSeconds, unhookTimeoutSeconds, dialect,
  };
}
