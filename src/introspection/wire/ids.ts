/**
 * Message and event numbers. nodevisor names every command and event by its KVMI name (without
 * the KVMI_ prefix) and keeps one table per dialect: the kvmi-v7 numbering that libkvmi speaks,
 * and the numbering of the RFC v5 headers. Both dialects share every layout and every rule;
 * only the numbers differ, and a dialect that has no number for a command cannot reach it.
 */
export const KVMI_COMMANDS = [
  'GET_VERSION', 'CHECK_COMMAND', 'CHECK_EVENT', 'GET_GUEST_INFO', 'GET_VCPU_INFO', 'PAUSE_VCPU',
  'CONTROL_VM_EVENTS', 'CONTROL_EVENTS', 'CONTROL_CR', 'CONTROL_MSR', 'CONTROL_VE', 'GET_REGISTERS',
  'SET_REGISTERS', 'GET_CPUID', 'GET_XSAVE', 'READ_PHYSICAL', 'WRITE_PHYSICAL', 'INJECT_EXCEPTION',
  'GET_PAGE_ACCESS', 'SET_PAGE_ACCESS', 'GET_MAP_TOKEN', 'GET_MTRR_TYPE', 'CONTROL_SPP',
  'GET_PAGE_WRITE_BITMAP', 'SET_PAGE_WRITE_BITMAP', 'CONTROL_CMD_RESPONSE', 'SET_VE_INFO_PAGE',
  'GET_MAX_GFN', 'GET_NEXT_AVAILABLE_GFN', 'SWITCH_EPT_VIEW', 'DISABLE_VE', 'GET_EPT_VIEW',
  'VCPU_TRANSLATE_GVA', 'CONTROL_EPT_VIEW', 'VCPU_GET_XCR', 'VCPU_SET_XSAVE', 'QUERY_PHYSICAL',
  'VCPU_ALLOC_GFN', 'VCPU_FREE_GFN', 'CREATE_EPT_VIEW', 'DESTROY_EPT_VIEW', 'VCPU_CHANGE_GFN',
  'VCPU_CONTROL_SINGLESTEP', 'PAUSE_ALL_VCPUS',
] as const;

export type KvmiCommand = (typeof KVMI_COMMANDS)[number];

export const KVMI_EVENTS = [
  'UNHOOK', 'CR', 'MSR', 'XSETBV', 'BREAKPOINT', 'HYPERCALL', 'PF', 'TRAP', 'DESCRIPTOR',
  'CREATE_VCPU', 'PAUSE_VCPU', 'SINGLESTEP', 'CPUID',
] as const;

export type KvmiEventName = (typeof KVMI_EVENTS)[number];

export type DialectName = 'v7' | 'rfc-v5';

/** KVMI_EVENT_ACTION_*: what the vCPU that raised an event does next. */
export const KVMI_EVENT_ACTION = { continue: 0, retry: 1, crash: 2 } as const;
export type KvmiAction = keyof typeof KVMI_EVENT_ACTION;

/** KVMI_PAGE_ACCESS_* bits. */
export const KVMI_PAGE_ACCESS_R = 1;
export const KVMI_PAGE_ACCESS_W = 2;
export const KVMI_PAGE_ACCESS_X = 4;

/** KVMI_VERSION, answered by GET_VERSION. */
export const KVMI_VERSION = 1;

const V7_COMMANDS: Partial<Record<KvmiCommand, number>> = {
  GET_VERSION: 2, CHECK_COMMAND: 3, CHECK_EVENT: 4, GET_GUEST_INFO: 5, GET_VCPU_INFO: 6,
  PAUSE_VCPU: 7, CONTROL_VM_EVENTS: 8, CONTROL_EVENTS: 9, CONTROL_CR: 10, CONTROL_MSR: 11,
  CONTROL_VE: 12, GET_REGISTERS: 13, SET_REGISTERS: 14, GET_CPUID: 15, GET_XSAVE: 16,
  READ_PHYSICAL: 17, WRITE_PHYSICAL: 18, INJECT_EXCEPTION: 19, GET_PAGE_ACCESS: 20,
  SET_PAGE_ACCESS: 21, GET_MAP_TOKEN: 22, GET_MTRR_TYPE: 23, CONTROL_SPP: 24,
  GET_PAGE_WRITE_BITMAP: 25, SET_PAGE_WRITE_BITMAP: 26, CONTROL_CMD_RESPONSE: 27,
  SET_VE_INFO_PAGE: 28, GET_MAX_GFN: 29, GET_NEXT_AVAILABLE_GFN: 31, SWITCH_EPT_VIEW: 32,
  DISABLE_VE: 33, GET_EPT_VIEW: 34, VCPU_TRANSLATE_GVA: 35, CONTROL_EPT_VIEW: 36,
  VCPU_GET_XCR: 37, VCPU_SET_XSAVE: 38, QUERY_PHYSICAL: 39, VCPU_ALLOC_GFN: 41,
  VCPU_FREE_GFN: 42, CREATE_EPT_VIEW: 43, DESTROY_EPT_VIEW: 44, VCPU_CHANGE_GFN: 60,
  VCPU_CONTROL_SINGLESTEP: 63,
};

// The RFC v5 headers: fewer commands, and PAUSE_ALL_VCPUS where v7 batches PAUSE_VCPU.
const RFC_V5_COMMANDS: Partial<Record<KvmiCommand, number>> = {
  GET_VERSION: 1, GET_GUEST_INFO: 3, GET_REGISTERS: 6, SET_REGISTERS: 7, GET_PAGE_ACCESS: 10,
  SET_PAGE_ACCESS: 11, INJECT_EXCEPTION: 12, READ_PHYSICAL: 13, WRITE_PHYSICAL: 14,
  GET_MAP_TOKEN: 15, CONTROL_EVENTS: 17, CONTROL_CR: 18, CONTROL_MSR: 19, GET_CPUID: 25,
  GET_XSAVE: 26, PAUSE_ALL_VCPUS: 27, CONTROL_VM_EVENTS: 28,
};

const V7_EVENTS: Partial<Record<KvmiEventName, number>> = {
  UNHOOK: 0, CR: 1, MSR: 2, XSETBV: 3, BREAKPOINT: 4, HYPERCALL: 5, PF: 6, TRAP: 7,
  DESCRIPTOR: 8, CREATE_VCPU: 9, PAUSE_VCPU: 10, SINGLESTEP: 11, CPUID: 13,
};

// v5 numbers its eleven events as v7 does; SINGLESTEP and CPUID came later.
const RFC_V5_EVENTS: Partial<Record<KvmiEventName, number>> = {
  UNHOOK: 0, CR: 1, MSR: 2, XSETBV: 3, BREAKPOINT: 4, HYPERCALL: 5, PF: 6, TRAP: 7,
  DESCRIPTOR: 8, CREATE_VCPU: 9, PAUSE_VCPU: 10,
};

/** One numbering of the protocol. */
export class Dialect {
  readonly name: DialectName;
  /** The id of KVMI_EVENT messages (VM → tool). */
  readonly eventMessage: number;
  /** The id of KVMI_EVENT_REPLY messages (tool → VM). */
  readonly eventReplyMessage: number;
  readonly #commands: ReadonlyMap<KvmiCommand, number>;
  readonly #commandById: ReadonlyMap<number, KvmiCommand>;
  readonly #events: ReadonlyMap<KvmiEventName, number>;
  readonly #eventById: ReadonlyMap<number, KvmiEventName>;

  constructor(
    name: DialectName,
    messages: { event: number; eventReply: number },
    commands: Partial<Record<KvmiCommand, number>>,
    events: Partial<Record<KvmiEventName, number>>,
  ) {
    this.name = name;
    this.eventMessage = messages.event;
    this.eventReplyMessage = messages.eventReply;
    const c = Object.entries(commands) as Array<[KvmiCommand, number]>;
    const e = Object.entries(events) as Array<[KvmiEventName, number]>;
    this.#commands = new Map(c);
    this.#commandById = new Map(c.map(([k, v]) => [v, k]));
    this.#events = new Map(e);
    this.#eventById = new Map(e.map(([k, v]) => [v, k]));
  }

  commandId(command: KvmiCommand): number | undefined {
    return this.#commands.get(command);
  }

  /** The command a message id names; undefined for EVENT/EVENT_REPLY and unknown ids. */
  command(id: number): KvmiCommand | undefined {
    return this.#commandById.get(id);
  }

  eventId(event: KvmiEventName): number | undefined {
    return this.#events.get(event);
  }

  event(id: number): KvmiEventName | undefined {
    return this.#eventById.get(id);
  }

  /** Every command this dialect numbers. */
  commands(): KvmiCommand[] {
    return [...this.#commands.keys()];
  }

  events(): KvmiEventName[] {
    return [...this.#events.keys()];
  }
}

export const DIALECTS: Readonly<Record<DialectName, Dialect>> = {
  v7: new Dialect('v7', { event: 1, eventReply: 0 }, V7_COMMANDS, V7_EVENTS),
  'rfc-v5': new Dialect('rfc-v5', { event: 23, eventReply: 24 }, RFC_V5_COMMANDS, RFC_V5_EVENTS),
};

export function dialect(name: DialectName): Dialect {
  return DIALECTS[name];
}
