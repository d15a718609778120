/**
 * The layout of every command nodevisor serves or the client sends: the request payload and
 * the reply data (what follows kvmi_error_code when err is 0). Each layout encodes and decodes
 * both ways, since the client and the VM side share them. Decoding enforces the size rules
 * (exact, or a fixed part plus whole elements) and zero padding; a violation throws EINVAL.
 */
import type { Regs } from '../../hypervisor/x86-state.js';
import { decodeRegs, encodeRegs, KVM_REGS_SIZE } from '../../kvm/structs.js';
import { PayloadReader, PayloadWriter } from './bytes.js';
import { invalid } from './errors.js';
import type { KvmiCommand } from './ids.js';
import { decodeRegistersReply, encodeRegistersReply, type RegistersReply } from './vcpu-state.js';

/** A command without parameters, or a reply without data. */
export type None = null;

export interface Layout<Req, Rep> {
  encodeRequest(req: Req): Uint8Array;
  decodeRequest(payload: Uint8Array): Req;
  encodeReply(rep: Rep): Uint8Array;
  /** `req` is the request the reply answers (GET_REGISTERS needs its MSR count). */
  decodeReply(data: Uint8Array, req: Req): Rep;
}

// struct kvmi_vcpu_hdr {u16 vcpu; u16 padding1; u32 padding2}
const VCPU_HEADER_SIZE = 8;
function writeVcpu(w: PayloadWriter, vcpu: number): PayloadWriter {
  return w.u16(vcpu).pad(6);
}
function readVcpu(r: PayloadReader): number {
  const vcpu = r.u16();
  r.padding(6);
  return vcpu;
}

/** Runs `read` over the whole payload and insists that it used every byte. */
function parse<T>(payload: Uint8Array, read: (r: PayloadReader) => T): T {
  const r = new PayloadReader(payload);
  const out = read(r);
  r.end();
  return out;
}

function exact(payload: Uint8Array, size: number, what: string): void {
  if (payload.length !== size) throw invalid(`${what}: ${payload.length} bytes, expected ${size}`);
}

const nothing: Pick<Layout<unknown, None>, 'encodeReply' | 'decodeReply'> = {
  encodeReply: () => new Uint8Array(0),
  decodeReply: (data) => {
    exact(data, 0, 'reply');
    return null;
  },
};

const noParameters: Pick<Layout<None, unknown>, 'encodeRequest' | 'decodeRequest'> = {
  encodeRequest: () => new Uint8Array(0),
  decodeRequest: (payload) => {
    exact(payload, 0, 'request');
    return null;
  },
};

function vcpuOnly(what: string): Pick<Layout<{ vcpu: number }, unknown>, 'encodeRequest' | 'decodeRequest'> {
  return {
    encodeRequest: (q) => writeVcpu(new PayloadWriter(VCPU_HEADER_SIZE), q.vcpu).done(),
    decodeRequest: (p) => {
      exact(p, VCPU_HEADER_SIZE, what);
      return parse(p, (r) => ({ vcpu: readVcpu(r) }));
    },
  };
}

/** A u64 reply such as GET_MAX_GFN's gfn. */
function u64Reply<K extends string>(key: K): Pick<Layout<unknown, Record<K, bigint>>, 'encodeReply' | 'decodeReply'> {
  return {
    encodeReply: (x) => new PayloadWriter(8).u64(x[key]).done(),
    decodeReply: (d) => {
      exact(d, 8, key);
      return parse(d, (r) => ({ [key]: r.u64() }) as Record<K, bigint>);
    },
  };
}

export interface Features {
  spp: boolean;
  vmfunc: boolean;
  eptp: boolean;
  ve: boolean;
}

export interface VersionReply {
  version: number;
  features: Features;
}

const GET_VERSION: Layout<None, VersionReply> = {
  ...noParameters,
  encodeReply: (x) => {
    const f = x.features;
    return new PayloadWriter(16).u32(x.version).pad(4)
      .u8(+f.spp).u8(+f.vmfunc).u8(+f.eptp).u8(+f.ve).pad(4).done();
  },
  decodeReply: (d) => {
    exact(d, 16, 'GET_VERSION reply');
    return parse(d, (r) => {
      const version = r.u32();
      r.padding(4);
      const features = { spp: r.flag('spp'), vmfunc: r.flag('vmfunc'), eptp: r.flag('eptp'), ve: r.flag('ve') };
      r.padding(4);
      return { version, features };
    });
  },
};

/** CHECK_COMMAND and CHECK_EVENT: {u16 id; u16 padding1; u32 padding2}. */
const CHECK: Layout<{ id: number }, None> = {
  encodeRequest: (q) => new PayloadWriter(8).u16(q.id).pad(6).done(),
  decodeRequest: (p) => {
    exact(p, 8, 'CHECK request');
    return parse(p, (r) => {
      const id = r.u16();
      r.padding(6);
      return { id };
    });
  },
  ...nothing,
};

const GET_GUEST_INFO: Layout<None, { vcpuCount: number }> = {
  ...noParameters,
  encodeReply: (x) => new PayloadWriter(16).u32(x.vcpuCount).pad(12).done(),
  decodeReply: (d) => {
    exact(d, 16, 'GET_GUEST_INFO reply');
    return parse(d, (r) => {
      const vcpuCount = r.u32();
      r.padding(12);
      return { vcpuCount };
    });
  },
};

const GET_VCPU_INFO: Layout<{ vcpu: number }, { tscSpeed: bigint }> = {
  ...vcpuOnly('GET_VCPU_INFO'),
  ...u64Reply('tscSpeed'),
};

/** A vCPU header, a 0/1 byte and 7 bytes of padding (PAUSE_VCPU, VCPU_CONTROL_SINGLESTEP). */
function vcpuFlag<K extends string>(what: string, key: K): Layout<{ vcpu: number } & Record<K, boolean>, None> {
  return {
    encodeRequest: (q) => writeVcpu(new PayloadWriter(16), q.vcpu).u8(+q[key]).pad(7).done(),
    decodeRequest: (p) => {
      exact(p, 16, what);
      return parse(p, (r) => {
        const vcpu = readVcpu(r);
        const value = r.flag(key);
        r.padding(7);
        return { vcpu, [key]: value } as { vcpu: number } & Record<K, boolean>;
      });
    },
    ...nothing,
  };
}

export interface ControlVmEvents {
  event: number;
  enable: boolean;
}

const CONTROL_VM_EVENTS: Layout<ControlVmEvents, None> = {
  encodeRequest: (q) => new PayloadWriter(8).u16(q.event).u8(+q.enable).pad(5).done(),
  decodeRequest: (p) => {
    exact(p, 8, 'CONTROL_VM_EVENTS');
    return parse(p, (r) => {
      const event = r.u16();
      const enable = r.flag('enable');
      r.padding(5);
      return { event, enable };
    });
  },
  ...nothing,
};

const CONTROL_EVENTS: Layout<ControlVmEvents & { vcpu: number }, None> = {
  encodeRequest: (q) => writeVcpu(new PayloadWriter(16), q.vcpu).u16(q.event).u8(+q.enable).pad(5).done(),
  decodeRequest: (p) => {
    exact(p, 16, 'CONTROL_EVENTS');
    return parse(p, (r) => {
      const vcpu = readVcpu(r);
      const event = r.u16();
      const enable = r.flag('enable');
      r.padding(5);
      return { vcpu, event, enable };
    });
  },
  ...nothing,
};

/** CONTROL_CR and CONTROL_MSR: vCPU header + {u8 enable; u8 pad; u16 pad; u32 register}. */
export interface ControlRegister {
  vcpu: number;
  enable: boolean;
  register: number;
}

function controlRegister(what: string): Layout<ControlRegister, None> {
  return {
    encodeRequest: (q) => writeVcpu(new PayloadWriter(16), q.vcpu).u8(+q.enable).pad(3).u32(q.register).done(),
    decodeRequest: (p) => {
      exact(p, 16, what);
      return parse(p, (r) => {
        const vcpu = readVcpu(r);
        const enable = r.flag('enable');
        r.padding(3);
        return { vcpu, enable, register: r.u32() };
      });
    },
    ...nothing,
  };
}

export interface GetRegisters {
  vcpu: number;
  msrs: number[];
}

const GET_REGISTERS: Layout<GetRegisters, RegistersReply> = {
  encodeRequest: (q) => {
    const w = writeVcpu(new PayloadWriter(16 + 4 * q.msrs.length), q.vcpu).u16(q.msrs.length).pad(6);
    for (const m of q.msrs) w.u32(m);
    return w.done();
  },
  decodeRequest: (p) => parse(p, (r) => {
    const vcpu = readVcpu(r);
    const n = r.u16();
    r.padding(6);
    if (r.remaining !== 4 * n) throw invalid(`GET_REGISTERS: ${n} MSRs need ${4 * n} bytes, got ${r.remaining}`);
    const msrs: number[] = [];
    for (let i = 0; i < n; i++) msrs.push(r.u32());
    return { vcpu, msrs };
  }),
  encodeReply: encodeRegistersReply,
  decodeReply: (d, q) => decodeRegistersReply(d, q.msrs.length),
};

const SET_REGISTERS: Layout<{ vcpu: number; regs: Regs }, None> = {
  encodeRequest: (q) => writeVcpu(new PayloadWriter(VCPU_HEADER_SIZE + KVM_REGS_SIZE), q.vcpu).raw(encodeRegs(q.regs)).done(),
  decodeRequest: (p) => {
    exact(p, VCPU_HEADER_SIZE + KVM_REGS_SIZE, 'SET_REGISTERS');
    return parse(p, (r) => ({ vcpu: readVcpu(r), regs: decodeRegs(r.bytes(KVM_REGS_SIZE)) }));
  },
  ...nothing,
};

export interface CpuidLeaf {
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

const GET_CPUID: Layout<{ vcpu: number; function: number; index: number }, CpuidLeaf> = {
  encodeRequest: (q) => writeVcpu(new PayloadWriter(16), q.vcpu).u32(q.function).u32(q.index).done(),
  decodeRequest: (p) => {
    exact(p, 16, 'GET_CPUID');
    return parse(p, (r) => ({ vcpu: readVcpu(r), function: r.u32(), index: r.u32() }));
  },
  encodeReply: (x) => new PayloadWriter(16).u32(x.eax).u32(x.ebx).u32(x.ecx).u32(x.edx).done(),
  decodeReply: (d) => {
    exact(d, 16, 'GET_CPUID reply');
    return parse(d, (r) => ({ eax: r.u32(), ebx: r.u32(), ecx: r.u32(), edx: r.u32() }));
  },
};

/** Reply data that is just bytes (GET_XSAVE's region, READ_PHYSICAL's data). */
const rawReply: Pick<Layout<unknown, Uint8Array>, 'encodeReply' | 'decodeReply'> = {
  encodeReply: (x) => x,
  decodeReply: (d) => new Uint8Array(d),
};

const GET_XSAVE: Layout<{ vcpu: number }, Uint8Array> = { ...vcpuOnly('GET_XSAVE'), ...rawReply };

export interface ReadPhysical {
  gpa: bigint;
  size: bigint;
}

const READ_PHYSICAL: Layout<ReadPhysical, Uint8Array> = {
  encodeRequest: (q) => new PayloadWriter(16).u64(q.gpa).u64(q.size).done(),
  decodeRequest: (p) => {
    exact(p, 16, 'READ_PHYSICAL');
    return parse(p, (r) => ({ gpa: r.u64(), size: r.u64() }));
  },
  encodeReply: (x) => x,
  decodeReply: (d, q) => {
    if (BigInt(d.length) !== q.size) throw invalid(`READ_PHYSICAL reply of ${d.length} bytes, expected ${q.size}`);
    return new Uint8Array(d);
  },
};

const WRITE_PHYSICAL: Layout<{ gpa: bigint; data: Uint8Array }, None> = {
  encodeRequest: (q) => new PayloadWriter(16 + q.data.length).u64(q.gpa).u64(BigInt(q.data.length)).raw(q.data).done(),
  decodeRequest: (p) => parse(p, (r) => {
    const gpa = r.u64();
    const size = r.u64();
    if (BigInt(r.remaining) !== size) throw invalid(`WRITE_PHYSICAL announces ${size} bytes and carries ${r.remaining}`);
    return { gpa, data: r.bytes(r.remaining) };
  }),
  ...nothing,
};

export interface InjectException {
  vcpu: number;
  vector: number;
  errorCode: number;
  /** CR2 for a page fault. */
  address: bigint;
}

const INJECT_EXCEPTION: Layout<InjectException, None> = {
  encodeRequest: (q) => writeVcpu(new PayloadWriter(24), q.vcpu).u8(q.vector).pad(3).u32(q.errorCode).u64(q.address).done(),
  decodeRequest: (p) => {
    exact(p, 24, 'INJECT_EXCEPTION');
    return parse(p, (r) => {
      const vcpu = readVcpu(r);
      const vector = r.u8();
      r.padding(3);
      return { vcpu, vector, errorCode: r.u32(), address: r.u64() };
    });
  },
  ...nothing,
};

/** {u16 view; u16 count; u32 padding} then count elements of `element` bytes. */
function readCounted<T>(p: Uint8Array, what: string, element: number, read: (r: PayloadReader) => T): { view: number; items: T[] } {
  return parse(p, (r) => {
    const viewIndex = r.u16();
    const count = r.u16();
    r.padding(4);
    if (r.remaining !== count * element) {
      throw invalid(`${what}: ${count} entries need ${count * element} bytes, got ${r.remaining}`);
    }
    const items: T[] = [];
    for (let i = 0; i < count; i++) items.push(read(r));
    return { view: viewIndex, items };
  });
}

export interface GetPageAccess {
  view: number;
  gpas: bigint[];
}

const GET_PAGE_ACCESS: Layout<GetPageAccess, number[]> = {
  encodeRequest: (q) => {
    const w = new PayloadWriter(8 + 8 * q.gpas.length).u16(q.view).u16(q.gpas.length).pad(4);
    for (const g of q.gpas) w.u64(g);
    return w.done();
  },
  decodeRequest: (p) => {
    const { view: v, items } = readCounted(p, 'GET_PAGE_ACCESS', 8, (r) => r.u64());
    return { view: v, gpas: items };
  },
  encodeReply: (x) => Uint8Array.from(x),
  decodeReply: (d, q) => {
    exact(d, q.gpas.length, 'GET_PAGE_ACCESS reply');
    return [...d];
  },
};

export interface PageAccessEntry {
  gpa: bigint;
  /** KVMI_PAGE_ACCESS_R | _W | _X. */
  access: number;
}

export interface SetPageAccess {
  view: number;
  entries: PageAccessEntry[];
}

const SET_PAGE_ACCESS: Layout<SetPageAccess, None> = {
  encodeRequest: (q) => {
    const w = new PayloadWriter(8 + 16 * q.entries.length).u16(q.view).u16(q.entries.length).pad(4);
    for (const e of q.entries) w.u64(e.gpa).u8(e.access).pad(7);
    return w.done();
  },
  decodeRequest: (p) => {
    const { view: v, items } = readCounted(p, 'SET_PAGE_ACCESS', 16, (r) => {
      const gpa = r.u64();
      const access = r.u8();
      r.padding(7);
      return { gpa, access };
    });
    return { view: v, entries: items };
  },
  ...nothing,
};

export interface ControlCmdResponse {
  enable: boolean;
  /** Apply the setting before deciding whether this very command is answered. */
  now: boolean;
}

const CONTROL_CMD_RESPONSE: Layout<ControlCmdResponse, None> = {
  encodeRequest: (q) => new PayloadWriter(8).u8(+q.enable).u8(+q.now).pad(6).done(),
  decodeRequest: (p) => {
    exact(p, 8, 'CONTROL_CMD_RESPONSE');
    return parse(p, (r) => {
      const enable = r.flag('enable');
      const now = r.flag('now');
      r.padding(6);
      return { enable, now };
    });
  },
  ...nothing,
};

const GET_MAX_GFN: Layout<None, { gfn: bigint }> = { ...noParameters, ...u64Reply('gfn') };

const VCPU_TRANSLATE_GVA: Layout<{ vcpu: number; gva: bigint }, { gpa: bigint }> = {
  encodeRequest: (q) => writeVcpu(new PayloadWriter(16), q.vcpu).u64(q.gva).done(),
  decodeRequest: (p) => {
    exact(p, 16, 'VCPU_TRANSLATE_GVA');
    return parse(p, (r) => ({ vcpu: readVcpu(r), gva: r.u64() }));
  },
  ...u64Reply('gpa'),
};

const VCPU_GET_XCR: Layout<{ vcpu: number; xcr: number }, { value: bigint }> = {
  encodeRequest: (q) => writeVcpu(new PayloadWriter(16), q.vcpu).u8(q.xcr).pad(7).done(),
  decodeRequest: (p) => {
    exact(p, 16, 'VCPU_GET_XCR');
    return parse(p, (r) => {
      const vcpu = readVcpu(r);
      const xcr = r.u8();
      r.padding(7);
      return { vcpu, xcr };
    });
  },
  ...u64Reply('value'),
};

/** What backs a guest-physical range (QUERY_PHYSICAL). */
export const PHYSICAL_TYPES = ['ram', 'rom', 'mmio'] as const;
export type PhysicalType = (typeof PHYSICAL_TYPES)[number];

export interface PhysicalRange {
  start: bigint;
  size: bigint;
  type: PhysicalType;
}

/**
 * QUERY_PHYSICAL: no published layout is known, so this one is nodevisor's own:
 * {u64 gpa} → {u64 start; u64 size; u8 type (1 RAM, 2 ROM, 3 MMIO); u8 padding[7]}.
 */
const QUERY_PHYSICAL: Layout<{ gpa: bigint }, PhysicalRange> = {
  encodeRequest: (q) => new PayloadWriter(8).u64(q.gpa).done(),
  decodeRequest: (p) => {
    exact(p, 8, 'QUERY_PHYSICAL');
    return parse(p, (r) => ({ gpa: r.u64() }));
  },
  encodeReply: (x) => new PayloadWriter(24).u64(x.start).u64(x.size).u8(PHYSICAL_TYPES.indexOf(x.type) + 1).pad(7).done(),
  decodeReply: (d) => {
    exact(d, 24, 'QUERY_PHYSICAL reply');
    return parse(d, (r) => {
      const start = r.u64();
      const size = r.u64();
      const type = PHYSICAL_TYPES[r.u8() - 1];
      if (type === undefined) throw invalid('QUERY_PHYSICAL: unknown memory type');
      r.padding(7);
      return { start, size, type };
    });
  },
};

/** The layouts, by command. Commands nodevisor cannot serve need none except CONTROL_CR (the client sends it). */
export const LAYOUTS = {
  GET_VERSION,
  CHECK_COMMAND: CHECK,
  CHECK_EVENT: CHECK,
  GET_GUEST_INFO,
  GET_VCPU_INFO,
  PAUSE_VCPU: vcpuFlag('PAUSE_VCPU', 'wait'),
  CONTROL_VM_EVENTS,
  CONTROL_EVENTS,
  CONTROL_CR: controlRegister('CONTROL_CR'),
  CONTROL_MSR: controlRegister('CONTROL_MSR'),
  GET_REGISTERS,
  SET_REGISTERS,
  GET_CPUID,
  GET_XSAVE,
  READ_PHYSICAL,
  WRITE_PHYSICAL,
  INJECT_EXCEPTION,
  GET_PAGE_ACCESS,
  SET_PAGE_ACCESS,
  CONTROL_CMD_RESPONSE,
  GET_MAX_GFN,
  VCPU_TRANSLATE_GVA,
  VCPU_GET_XCR,
  QUERY_PHYSICAL,
  VCPU_CONTROL_SINGLESTEP: vcpuFlag('VCPU_CONTROL_SINGLESTEP', 'enable'),
} satisfies Partial<Record<KvmiCommand, Layout<unknown, unknown>>>;

export type LaidOutCommand = keyof typeof LAYOUTS;
export type RequestOf<C extends LaidOutCommand> = Parameters<(typeof LAYOUTS)[C]['encodeRequest']>[0];
export type ReplyOf<C extends LaidOutCommand> = ReturnType<(typeof LAYOUTS)[C]['decodeReply']>;
