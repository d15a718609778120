/**
 * Executes one parsed QMP request and builds its reply, by QEMU 7.2's rules (qapi/qmp-dispatch.c
 * and monitor/qmp.c): the request must be an object with a string `execute` (or `exec-oob`
 * when out-of-band execution was negotiated), an object `arguments` and any `id`, which is echoed
 * whatever its JSON type. Members are checked in QEMU's QDict order, so with several problems
 * the same one is reported. Before negotiation only `qmp_capabilities` exists, and "command not
 * found" becomes "Expecting capabilities negotiation with 'qmp_capabilities'".
 */
import { QmpError, toQmpError } from './errors.js';
import { formatQmpJson, qdictOrder } from './json-writer.js';
import { isJsonObject, jsonObject, type JsonObject, type JsonValue } from './json-value.js';
import { validateArgs, type ArgsOf, type Schema } from './schema.js';
import type { QmpSession } from './session.js';

export interface CommandContext {
  /** The calling client's session (qmp_capabilities changes it). */
  readonly session: QmpSession;
  /** Every command in the table, for query-commands. */
  readonly commandNames: readonly string[];
}

export interface CommandDef<S extends Schema = Schema> {
  readonly args: S;
  /** Returns the `return` value; undefined means `{}`, as for QEMU's commands without one. */
  handler(args: ArgsOf<S>, ctx: CommandContext): unknown;
  /** Available before capabilities negotiation (only qmp_capabilities in QEMU). */
  readonly allowedBeforeNegotiation?: boolean;
  /** May be run with `exec-oob`. */
  readonly oob?: boolean;
}

export type CommandTable = Readonly<Record<string, CommandDef>>;

/** Declares a command with its handler's arguments typed from its schema. */
export function defineCommand<S extends Schema>(def: CommandDef<S>): CommandDef {
  return def as unknown as CommandDef;
}

export type QmpReply = JsonObject;

/** {"error": {"class", "desc"}}, with the request's id when there is one. */
export function errorReply(error: QmpError, id?: JsonValue): QmpReply {
  const desc = jsonObject();
  desc.class = error.class;
  desc.desc = error.desc;
  const reply = jsonObject();
  reply.error = desc;
  if (id !== undefined) reply.id = id;
  return reply;
}

const NEGOTIATION_EXPECTED = "Expecting capabilities negotiation with 'qmp_capabilities'";

export class QmpDispatcher {
  readonly #commands: CommandTable;
  readonly commandNames: readonly string[];

  constructor(commands: CommandTable) {
    this.#commands = commands;
    this.commandNames = Object.keys(commands);
  }

  /**
   * True for a request QEMU runs out of band, at once, ahead of queued in-band requests: an
   * object with `exec-oob` and no `execute`, from a client that enabled oob.
   */
  isOutOfBand(request: JsonValue, session: QmpSession): boolean {
    return session.oob && isJsonObject(request) && 'exec-oob' in request && !('execute' in request);
  }

  /** Runs one request; never throws, always returns a reply (one that has a JSON form). */
  async dispatch(request: JsonValue, session: QmpSession): Promise<QmpReply> {
    const reply = await this.run(request, session);
    try {
      formatQmpJson(reply);
      return reply;
    } catch (e) {
      return unformattable(e, reply);
    }
  }

  /**
   * The server's dispatch(): no promise when the command's handler returns a plain value, as
   * every query does, so the reply is ready when run() returns and is written at once. A
   * handler that returns a promise gives a promise of the reply. Never throws or rejects.
   * The reply's `return` is not yet checked for a JSON form: write it with formatReply(),
   * which formats it once and turns a failure into the error reply dispatch() would give.
   */
  run(request: JsonValue, session: QmpSession): QmpReply | Promise<QmpReply> {
    const negotiating = !session.negotiated;
    let id: JsonValue | undefined;
    try {
      if (!isJsonObject(request)) throw new QmpError('GenericError', 'QMP input must be a JSON object');
      id = request.id;
      const result = this.#execute(request, session);
      if (!isThenable(result)) return success(result, id);
      const requestId = id;
      return Promise.resolve(result).then(
        (value) => success(value, requestId),
        (e: unknown) => failure(e, requestId, negotiating),
      );
    } catch (e) {
      return failure(e, id, negotiating);
    }
  }

  /** Checks the request and calls the handler; what the handler returned (perhaps a promise). */
  #execute(request: JsonObject, session: QmpSession): unknown {
    const execKey = checkRequest(request, session.oob);
    const name = request[execKey] as string;
    const command = Object.hasOwn(this.#commands, name) ? this.#commands[name] : undefined;
    if (command === undefined || (!session.negotiated && command.allowedBeforeNegotiation !== true)) {
      throw new QmpError('CommandNotFound', `The command ${name} has not been found`);
    }
    if (execKey === 'exec-oob' && command.oob !== true) {
      throw new QmpError('GenericError', `The command ${name} does not support OOB`);
    }
    const rawArgs = request.arguments;
    const args = validateArgs(command.args, isJsonObject(rawArgs) ? rawArgs : NO_ARGS);
    return command.handler(args, { session, commandNames: this.commandNames });
  }
}

/** The arguments of a request without any: only ever read. */
const NO_ARGS: JsonObject = jsonObject();

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/** {"return": …} for what a handler returned; undefined is `{}`. */
function success(result: unknown, id: JsonValue | undefined): QmpReply {
  const reply = jsonObject();
  // Checked for a JSON form when formatted (formatReply), not here: it is formatted once.
  reply.return = (result === undefined ? jsonObject() : result) as JsonValue;
  if (id !== undefined) reply.id = id;
  return reply;
}

/**
 * A reply as the client reads it (without the line end). A `return` value that has no JSON
 * form (a function, a class instance) becomes an internal error, here rather than in the
 * middle of writing to the socket.
 */
export function formatReply(reply: QmpReply): string {
  try {
    return formatQmpJson(reply);
  } catch (e) {
    return formatQmpJson(unformattable(e, reply));
  }
}

function unformattable(e: unknown, reply: QmpReply): QmpReply {
  return errorReply(toQmpError(e), reply.id);
}

function failure(e: unknown, id: JsonValue | undefined, negotiating: boolean): QmpReply {
  let error = toQmpError(e);
  if (negotiating && error.class === 'CommandNotFound') error = new QmpError('CommandNotFound', NEGOTIATION_EXPECTED);
  return errorReply(error, id);
}

/** QEMU's qmp_dispatch_check_obj(): returns the member naming the command. */
function checkRequest(request: JsonObject, allowOob: boolean): 'execute' | 'exec-oob' {
  let execKey: 'execute' | 'exec-oob' | undefined;
  for (const key of qdictOrder(Object.keys(request))) {
    const value = request[key];
    if (key === 'execute' || (key === 'exec-oob' && allowOob)) {
      if (typeof value !== 'string') throw new QmpError('GenericError', `QMP input member '${key}' must be a string`);
      if (execKey !== undefined) {
        throw new QmpError('GenericError', "QMP input member 'execute' clashes with 'exec-oob'");
      }
      execKey = key;
    } else if (key === 'arguments') {
      if (!isJsonObject(value)) throw new QmpError('GenericError', "QMP input member 'arguments' must be an object");
    } else if (key !== 'id') {
      throw new QmpError('GenericError', `QMP input member '${key}' is unexpected`);
    }
  }
  if (execKey === undefined) throw new QmpError('GenericError', "QMP input lacks member 'execute'");
  return execKey;
}
