/**
 * A vCPU thread: runs KVM_RUN in a loop and handles its own exits against its copy of the
 * machine's devices. Everything that concerns the whole machine (reset, shutdown, errors)
 * is reported to the main thread, and the vCPU pauses itself until told what next.
 */
import { availableParallelism } from 'node:os';
import { receiveMessageOnPort, workerData, parentPort, type MessagePort } from 'node:worker_threads';
import { setLapicLint } from '../arch/x86/lapic.js';
import { codeWindow, DUMP_CODE_BYTES_TOTAL } from '../arch/x86/register-dump.js';
import type { BootCpuState, Regs, Sregs } from '../hypervisor/x86-state.js';
import { zeroRegs } from '../hypervisor/x86-state.js';
import type { HypervisorVcpu } from '../hypervisor/hypervisor.js';
import { DirtyRing } from '../kvm/dirty-ring.js';
import { blockSigbus, takeSigbus } from '../kvm/hwpoison.js';
import { describeSiginfo, memoryErrorOf, type SigInfo } from '../kvm/siginfo.js';
import {
  decideMemoryFailure, MCG_SER_P, MSR_MCE_BANK_CTL, MSR_MCG_CAP, MSR_MCG_CTL, MSR_MCG_STATUS, vcpuMceState,
} from '../runstate/memory-failure.js';
import {
  KvmVcpu, KvmVm, KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_SINGLESTEP, KVM_GUESTDBG_USE_SW_BP, KVM_MP_STATE_RUNNABLE,
  KVM_MP_STATE_UNINITIALIZED,
} from '../kvm/kvm.js';
import { gettid, pthreadSigmask, SIG_BLOCK, sigset, sigtimedwait, timespec } from '../kvm/libc.js';
import { buildDevices, type Devices } from '../machine/devices.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { viewAt } from '../kvm/libc.js';
import { SharedByteRing } from '../devices/shared-state.js';
import type { ByteSink } from '../devices/device.js';
import type { GuestPanicInformation } from '../runstate/events.js';
import * as C from './control.js';
import { Doorbell } from './doorbell.js';
import { ExitDecoder, type VcpuExit } from './exit.js';
import { handleExit, type ExitAction, type ExitContext, type UserMsrs } from './handle-exit.js';
import type { IntrospectionExit, IntrospectionState, VcpuCommand, VcpuEvent, VcpuReply, VcpuSetup, VcpuWorkerData } from './messages.js';
import { NO_REPLY } from './messages.js';
import { DIRECT_EVENT_MAX_BYTES, sendDirectEvent } from '../introspection/socket/direct-event.js';
import { KVM_MSR_ENTRY_SIZE, KVM_REGS_SIZE, KVM_SREGS_SIZE } from '../kvm/structs.js';
import { EventSlots } from '../introspection/socket/event-slots.js';
import { readOwnReply } from '../introspection/socket/own-reply.js';

const data = workerData as VcpuWorkerData;

/** Host address of a guest-physical address (the fake hypervisor poisons pages by gpa). */
function hostAddressOf(gpa: number): bigint {
  const r = data.ram.find((x) => gpa >= x.gpa && gpa < x.gpa + x.size);
  if (!r) throw new RangeError(`gpa 0x${gpa.toString(16)} is not RAM`);
  return r.hostAddress + BigInt(gpa - r.gpa);
}

/** Guest-physical address of a host address inside guest RAM, or null (the VMM's own memory). */
function gpaOf(hostAddress: bigint): bigint | null {
  const r = data.ram.find((x) => hostAddress >= x.hostAddress && hostAddress < x.hostAddress + BigInt(x.size));
  return r ? BigInt(r.gpa) + (hostAddress - r.hostAddress) : null;
}
const ctl = new Int32Array(data.control);
/** Rung by the main thread (commands, run requests) and by introspection's answers. */
const doorbell = new Doorbell({ buffer: data.control, index: C.DOORBELL });
const port: MessagePort = data.port;
const vm = new KvmVm(data.vmFd);
const real = data.backend.kind === 'kvm';
// The fake hypervisor (tests only) is loaded only when asked for.
const vcpu: HypervisorVcpu = data.backend.kind === 'kvm'
  ? new KvmVcpu(data.vcpuFd, data.runAddress, data.runSize)
  : new (await import('../testing/fake-hypervisor.js')).FakeVcpu(data.backend.script.vcpus[data.index] ?? [], hostAddressOf);
const dirtyRing = real && data.config.dirtyRingEntries > 0 ? new DirtyRing(data.vcpuFd, data.config.dirtyRingEntries) : null;
const decoder = new ExitDecoder(vcpu.run, vcpu.runBytes);
const memory = new GuestMemory(data.ram.map((r) => ({ ...r, bytes: new Uint8Array(viewAt(r.hostAddress, r.size)) })));
const kickSet = sigset(C.KICK_SIGNAL);
const zeroTimeout = timespec(0);

function post(e: VcpuEvent): void {
  parentPort!.postMessage(e);
}

/** A guest request raised by a device during an exit: stop after this exit, let main decide. */
let pendingRequest: VcpuEvent | null = null;

/** COM1 output: into the shared ring; when the host side is slow, wait for it (bounded). */
function ringSink(ring: SharedByteRing): ByteSink {
  return {
    write(bytes: Uint8Array): void {
      let done = ring.push(bytes);
      let stalledMs = 0;
      while (done < bytes.length && stalledMs < 1000) {
        const tail = Atomics.load(ring.control, 1);
        if (Atomics.wait(ring.control, 1, tail, 50) === 'timed-out') stalledMs += 50;
        done += ring.push(bytes.subarray(done));
      }
    },
  };
}

/** Without an in-kernel irqchip (or a real VM) there is nothing to raise a line on. */
const NO_IRQ = { set: (): void => undefined };

const devices: Devices = buildDevices(data.devices, {
  irq: (line) => (real && data.config.irqchip ? { set: (level) => vm.irqLine(line, level) } : NO_IRQ),
  requests: {
    reset: (reason) => { pendingRequest ??= { type: 'request', kind: 'reset', reason }; },
    shutdown: (reason) => { pendingRequest ??= { type: 'request', kind: 'shutdown', reason }; },
  },
  guest: {
    panicked: (info) => { pendingRequest ??= { type: 'request', kind: 'guest-panic', ...(info ? { info } : {}) }; },
    crashLoaded: () => post({ type: 'notice', kind: 'crash-loaded' }),
    sleep: (state) => { pendingRequest ??= { type: 'request', kind: 'sleep', state }; },
  },
  serialSink: ringSink,
});

/** MSRs the MSR filter sends here: the Hyper-V crash MSRs with hv-crash; any other gets #GP. */
const hvCrash = data.config.hvCrash === 'user' ? devices.hvCrash : null;
const HV_CRASH_FIRST = 0x40000100;
const HV_CRASH_LAST = 0x40000105;
// A filtered write to an MSR that is not ours was denied for introspection (owns: false).
const userMsrs: UserMsrs = hvCrash
  ? { read: (i) => hvCrash.rdmsr(i), write: (i, v) => hvCrash.wrmsr(i, v), owns: (i) => i >= HV_CRASH_FIRST && i <= HV_CRASH_LAST }
  : { read: () => undefined, write: () => false, owns: () => false };

/** Introspection's interception on this vCPU, as last given to KVM_SET_GUEST_DEBUG. */
const debug = { breakpoints: false, singleStep: false };

function applyGuestDebug(): void {
  const on = debug.breakpoints || debug.singleStep;
  // Every intercepted exit reads the registers: let KVM hand them over with the exit.
  vcpu.syncRegs(on);
  vcpu.setGuestDebug((on ? KVM_GUESTDBG_ENABLE : 0) | (debug.breakpoints ? KVM_GUESTDBG_USE_SW_BP : 0)
    | (debug.singleStep ? KVM_GUESTDBG_SINGLESTEP : 0));
}

/** A linear address through the vCPU's paging (identity, 32 bits wide, without it); null if unmapped. */
function linearToGpa(linear: bigint, cr0: bigint = vcpu.getCodeAddress().cr0): bigint | null {
  if ((cr0 & 0x80000000n) === 0n) return linear & 0xffffffffn;
  try {
    return vcpu.translate(linear);
  } catch {
    return null;
  }
}

/** The linear address of RIP when the byte there is an INT3 (0xCC); otherwise null. */
function int3AtRip(): bigint | null {
  const { rip, csBase, cr0 } = vcpu.getCodeAddress();
  const linear = csBase + rip;
  const gpa = linearToGpa(linear, cr0);
  if (gpa === null || gpa > BigInt(Number.MAX_SAFE_INTEGER) || !memory.contains(Number(gpa), 1)) return null;
  return memory.readU8(Number(gpa)) === 0xcc ? linear : null;
}

const lock = devices.lock;
const ctx: ExitContext = {
  pio: devices.pio,
  mmio: devices.mmio,
  lock: () => lock.lock(),
  unlock: () => lock.unlock(),
  msrs: userMsrs,
  answer: decoder,
  notifyVmexit: data.config.notifyVmexit,
  debug,
  int3AtRip,
  isRam: (gpa, length) => memory.contains(gpa, length),
};

/** Warning keys already reported by this vCPU (the machine dedupes across vCPUs). */
const warned = new Set<string>();

// Power-on state captured at setup, restored at every reset.
let setup: VcpuSetup | null = null;
let resetSregs: Sregs | null = null;
let resetLapic: Uint8Array | null = null;
let resetEvents: Uint8Array | null = null;
let resetXcrs: Uint8Array | null = null;

function powerOn(boot: BootCpuState | null): void {
  if (!setup || !resetSregs || !resetLapic) throw new Error('vCPU reset before setup');
  vcpu.setSregs({ ...resetSregs, ...(boot?.sregs ?? {}) });
  vcpu.setRegs(boot?.regs ?? zeroRegs());
  vcpu.setFpu(setup.fpu);
  vcpu.setMsrs(setup.msrs);
  // A machine check still being handled must not survive a reset (it would make the next
  // memory error "recursive").
  if (setup.mcgCap !== null) vcpu.setMsrs([{ index: MSR_MCG_STATUS, data: 0n }]);
  if (resetLapic.length > 0) vcpu.setLapic(resetLapic);
  if (resetEvents) vcpu.setVcpuEvents(resetEvents);
  if (resetXcrs) vcpu.setXcrs(resetXcrs);
  // The boot CPU runs; the others wait for the guest's INIT/SIPI in the in-kernel LAPIC.
  if (data.config.irqchip) vcpu.setMpState(data.index === 0 ? KVM_MP_STATE_RUNNABLE : KVM_MP_STATE_UNINITIALIZED);
}

function serve(cmd: VcpuCommand): VcpuReply {
  try {
    switch (cmd.cmd) {
      case 'setup': {
        setup = cmd.setup;
        vcpu.setCpuid(setup.cpuid);
        if (setup.mcgCap !== null) vcpu.setupMce(setup.mcgCap);
        resetSregs = vcpu.getSregs();
        // Without an in-kernel irqchip there is no LAPIC to program.
        resetLapic = data.config.irqchip ? setLapicLint(vcpu.getLapic()) : new Uint8Array(0);
        resetEvents = vcpu.getVcpuEvents();
        resetXcrs = vcpu.getXcrs();
        powerOn(setup.boot);
        return { id: cmd.id, ok: true };
      }
      case 'reset':
        powerOn(cmd.boot);
        exceptionQueued = false;
        // An outstanding introspection event belongs to the state just replaced: dropped.
        if (awaitingReply) eventReply = { action: 'retry' };
        return { id: cmd.id, ok: true };
      case 'get-state':
        return { id: cmd.id, ok: true, regs: vcpu.getRegs(), sregs: vcpu.getSregs() };
      case 'get-msrs':
        return { id: cmd.id, ok: true, msrs: vcpu.getMsrs(cmd.indices) };
      case 'get-xsave':
        return { id: cmd.id, ok: true, xsave: vcpu.getXsave() };
      case 'get-xcrs':
        return { id: cmd.id, ok: true, xcrs: vcpu.getXcrs() };
      case 'set-regs':
        vcpu.setRegs(cmd.regs);
        return { id: cmd.id, ok: true };
      case 'inject-exception':
        return injectException(cmd);
      case 'guest-debug':
        if (cmd.breakpoints !== undefined) debug.breakpoints = cmd.breakpoints;
        if (cmd.singleStep !== undefined) debug.singleStep = cmd.singleStep;
        applyGuestDebug();
        return { id: cmd.id, ok: true };
      case 'event-reply':
        // Only the outstanding event's reply counts; a late one (after a reset or a quit) is dropped.
        if (awaitingReply) eventReply = { action: cmd.action, ...(cmd.newValue !== undefined ? { newValue: cmd.newValue } : {}) };
        return { id: cmd.id, ok: true };
      case 'event-msrs':
        eventMsrs = cmd.indices;
        return { id: cmd.id, ok: true };
      case 'event-slots':
        slots = new EventSlots(cmd.buffer);
        return { id: cmd.id, ok: true };
    }
  } catch (e) {
    return { id: cmd.id, ok: false, message: e instanceof Error ? e.message : String(e) };
  }
}

/**
 * An exception this thread queued that the vCPU has not entered the guest with yet. KVM's
 * KVM_GET_VCPU_EVENTS does not report an injected soft exception (#BP, #OF) as injected, so
 * the thread remembers it until the next KVM_RUN.
 */
let exceptionQueued = false;

/**
 * struct kvm_vcpu_events: exception {u8 injected, nr, has_error_code, pending; u32 error_code}
 * at 0, interrupt at 8, nmi at 12, sipi_vector at 16, flags at 20. Flags 0: NMI pending, SIPI,
 * shadow and SMM state are left as they are.
 */
function queueException(vector: number, hasErrorCode: boolean, errorCode: number): boolean {
  const ev = vcpu.getVcpuEvents();
  const v = new DataView(ev.buffer, ev.byteOffset, ev.byteLength);
  if (exceptionQueued || v.getUint8(0) !== 0 || v.getUint8(3) !== 0) return false;
  exceptionQueued = true;
  v.setUint8(0, 1);
  v.setUint8(1, vector);
  v.setUint8(2, hasErrorCode ? 1 : 0);
  v.setUint8(3, 0);
  v.setUint32(4, hasErrorCode ? errorCode >>> 0 : 0, true);
  v.setUint32(20, 0, true);
  vcpu.setVcpuEvents(ev);
  return true;
}

function injectException(cmd: Extract<VcpuCommand, { cmd: 'inject-exception' }>): VcpuReply {
  if (exceptionQueued || vcpu.getVcpuEvents()[0] !== 0) return { id: cmd.id, ok: false, code: 'EBUSY', message: 'an injected exception is still pending' };
  if (cmd.vector === 14) vcpu.setSregs({ ...vcpu.getSregs(), cr2: cmd.address });
  if (!queueException(cmd.vector, cmd.hasErrorCode, cmd.errorCode)) {
    return { id: cmd.id, ok: false, code: 'EBUSY', message: 'an injected exception is still pending' };
  }
  return { id: cmd.id, ok: true };
}

/** MSRs read into each introspection event ('event-msrs'). */
let eventMsrs: number[] = [];

/**
 * Registers and event MSRs, read here so the tool gets them without a round trip to this
 * thread; in `into` when given (see directBlock).
 */
function eventState(into?: Uint8Array): IntrospectionState | null {
  try {
    return vcpu.getStateBlock(eventMsrs, into);
  } catch {
    return null; // the main thread asks again, and reports what fails
  }
}

/**
 * A direct event is built in buffers this thread reuses: it is sent before the next one is
 * built, and allocating them costs about 1 us an event here.
 */
const directBlock = new Uint8Array(KVM_REGS_SIZE + KVM_SREGS_SIZE + 8 + 64 * KVM_MSR_ENTRY_SIZE);
const directOptions = { ownRead: true, scratch: new Uint8Array(DIRECT_EVENT_MAX_BYTES) };
const directState = (): Uint8Array | null => eventState(directBlock);

/** Introspection's event slots, once the machine's target has handed them over. */
let slots: EventSlots | null = null;

/**
 * Sends a breakpoint or single-step event straight to the tool when the session allows it
 * (src/introspection/socket/event-slots.ts); false: it goes through the main thread.
 */
function sendDirect(event: IntrospectionExit): boolean {
  if (slots === null) return false;
  if (event.kind === 'breakpoint' && event.gpa !== undefined) {
    return sendDirectEvent(slots, data.index, { event: 'BREAKPOINT', gpa: event.gpa, insnLength: event.insnLength }, directState, directOptions);
  }
  if (event.kind === 'singlestep') return sendDirectEvent(slots, data.index, { event: 'SINGLESTEP', failed: event.failed }, directState, directOptions);
  return false;
}

/**
 * Waiting for the answer to the vCPU's own event: a wake-up from another CPU costs tens of µs
 * on a PVM host, more than a fast tool takes to answer. So, as QEMU's iothreads poll before
 * they sleep (poll-max-ns), the thread watches its doorbell for up to REPLY_SPIN_MAX_US first,
 * as long as answers of late have come quickly (REPLY_SPIN_UNTIL_US on average).
 * A slow tool stops the spinning; on one CPU there is none (it would keep the tool off it).
 */
const REPLY_SPIN_MAX_US = 100;
/** Answers slower than this on average (a tool that thinks, or a host that is busy): no spinning. */
const REPLY_SPIN_UNTIL_US = 250;
const spinForReplies = availableParallelism() > 1;
/** How long answers took of late, µs (a moving average). */
let replyUs = 0;

/**
 * How long a vCPU that reads its own reply (src/introspection/socket/own-reply.ts) waits on
 * the socket before it hands the reading side back and sleeps on its doorbell. Commands from
 * the main thread wait that long at most; a tool that thinks longer costs one wake-up more.
 */
const OWN_REPLY_WAIT_MS = 1;

function spinsForReply(): boolean {
  return spinForReplies && replyUs < REPLY_SPIN_UNTIL_US;
}

/** Watches the doorbell for up to the spin window; true if it rang meanwhile. */
function spinForReply(bell: number): boolean {
  if (!spinsForReply()) return false;
  const until = performance.now() + REPLY_SPIN_MAX_US / 1000;
  while (performance.now() < until) if (doorbell.value !== bell) return true;
  return false;
}

/** Set while this vCPU waits for the reply to its introspection event. */
let awaitingReply = false;
let eventReply: { action: 'continue' | 'retry' | 'crash'; newValue?: bigint } | null = null;

/**
 * Raises an introspection event and waits for its reply, serving commands (registers, guest
 * debug, a machine reset) meanwhile. The vCPU counts as stopped while it waits, so pauses
 * and reads of the main thread complete at once. Returns null when told to quit.
 */
function awaitReply(event: IntrospectionExit): { action: 'continue' | 'retry' | 'crash'; newValue?: bigint } | null {
  awaitingReply = true;
  eventReply = null;
  Atomics.store(ctl, C.STATE, C.PAUSED);
  Atomics.notify(ctl, C.STATE);
  serveCommands(); // settings that arrived while the vCPU ran (event MSRs, slots) count for this event
  const direct = sendDirect(event);
  const sent = performance.now();
  if (!direct) post({ type: 'introspection', event, state: eventState() });
  else if (slots?.reading(data.index) === true) readOwnReply(slots, data.index, spinsForReply() ? REPLY_SPIN_MAX_US : 0, OWN_REPLY_WAIT_MS);
  try {
    for (;;) {
      const bell = doorbell.value;
      serveCommands();
      if (direct && eventReply === null) {
        const action = slots?.takeAnswer(data.index) ?? null;
        if (action !== null) {
          eventReply = { action };
          replyUs = 0.75 * replyUs + 0.25 * (performance.now() - sent) * 1000;
        }
      }
      if (eventReply !== null) break;
      if (Atomics.load(ctl, C.REQ) === C.QUIT) return null;
      if (direct && spinForReply(bell)) continue;
      doorbell.wait(bell);
    }
  } finally {
    awaitingReply = false;
  }
  // Paused meanwhile (the machine, or the tool): the main loop goes to pausedLoop instead.
  if (Atomics.load(ctl, C.REQ) === C.RUN) {
    Atomics.store(ctl, C.STATE, C.RUNNING);
    Atomics.notify(ctl, C.STATE);
  }
  return eventReply;
}

/** The guest's own #BP for an INT3 at RIP: past it when KVM stopped before it (emulation failure). */
function reinjectBreakpoint(emulated: boolean): void {
  if (emulated) {
    const regs = vcpu.getRegs();
    vcpu.setRegs({ ...regs, rip: regs.rip + 1n });
  }
  queueException(3, false, 0);
}

function onBreakpoint(gva: bigint, emulated: boolean): void {
  const gpa = linearToGpa(gva);
  const r = awaitReply({ kind: 'breakpoint', gva, ...(gpa !== null ? { gpa } : {}), insnLength: 1 });
  if (r === null) return;
  if (r.action === 'continue') reinjectBreakpoint(emulated);
  else if (r.action === 'crash') selfPause();
  // retry: enter again as it stands (the tool moved RIP or took its INT3 out).
}

function onMsrWrite(index: number, value: bigint): void {
  let oldValue = 0n;
  try {
    oldValue = vcpu.getMsrs([index])[0]?.data ?? 0n;
  } catch {
    // reported as 0
  }
  const r = awaitReply({ kind: 'msr', msr: index, oldValue, newValue: value });
  if (r === null) return;
  if (r.action === 'crash') {
    selfPause();
    return;
  }
  if (r.action === 'retry') return; // only after a reset (the session never sends it for MSRs)
  // The WRMSR completes with the tool's value; one KVM refuses is the guest's #GP.
  let ok = true;
  try {
    vcpu.setMsrs([{ index, data: r.newValue ?? value }]);
  } catch {
    ok = false;
  }
  decoder.answerWrmsr(ok);
}

function serveCommands(): void {
  for (let m = receiveMessageOnPort(port); m !== undefined; m = receiveMessageOnPort(port)) {
    const cmd = m.message as VcpuCommand;
    const reply = serve(cmd);
    if (cmd.id !== NO_REPLY) port.postMessage(reply);
  }
}

/** Consume pending kicks: they have done their job (KVM_RUN returned). Then act on them. */
function drainKicks(): void {
  while (sigtimedwait(kickSet, null, zeroTimeout) > 0) Atomics.add(ctl, C.KICKS, 1);
  deliverNmi();
  for (let info = takeSigbus(); info !== null; info = takeSigbus()) onSigbus(info);
}

/**
 * A SIGBUS for this thread: KVM found the guest's page hardware-poisoned (BUS_MCEERR_AR), or
 * the kernel warned about one early (AO). QEMU's kvm_arch_on_sigbus_vcpu decides; the event
 * goes to the machine before anything happens, so it precedes any RESET.
 */
function onSigbus(info: SigInfo): void {
  const err = memoryErrorOf(info);
  if (err === null) {
    selfPause();
    post({ type: 'fatal', message: `unexpected ${describeSiginfo(info)}` });
    return;
  }
  const guestAddress = gpaOf(err.hostAddress);
  const mcgCap = setup?.mcgCap ?? null;
  let state = { guestMceEnabled: false, recursive: false };
  try {
    const [cap, status, ctl0, bank] = vcpu.getMsrs([MSR_MCG_CAP, MSR_MCG_STATUS, MSR_MCG_CTL, MSR_MCE_BANK_CTL]).map((m) => m.data);
    state = vcpuMceState({ cr4: vcpu.getSregs().cr4, mcgCap: cap ?? 0n, mcgStatus: status ?? 0n, mcgCtl: ctl0 ?? 0n, bankCtl: bank ?? 0n });
  } catch {
    // Without machine-check MSRs the guest cannot take #MC: the defaults say so.
  }
  const decision = decideMemoryFailure({
    ...state, owner: guestAddress === null ? 'hypervisor' : 'guest', actionRequired: err.actionRequired,
    mcaRecovery: mcgCap !== null && (mcgCap & MCG_SER_P) !== 0n, hostAddress: err.hostAddress,
    ...(guestAddress !== null ? { guestAddress } : {}),
  });
  const next = decision.next.kind === 'inject' ? 'continue' : decision.next.kind;
  if (next !== 'continue') selfPause();
  post({
    type: 'memory-failure', event: decision.event, log: decision.log, next,
    poisonedPage: decision.trackPage ? { hostAddress: err.hostAddress, size: err.size } : null,
  });
  if (decision.next.kind === 'inject') vcpu.setMce(decision.next.mce);
}

/** An NMI the main thread queued (QMP inject-nmi): KVM_NMI from this, the vCPU's thread. */
function deliverNmi(): void {
  if (Atomics.exchange(ctl, C.NMI, 0) !== 0) vcpu.nmi();
}

/** Pause on our own (an exit the machine must decide about), unless told to quit. */
function selfPause(): void {
  Atomics.compareExchange(ctl, C.REQ, C.RUN, C.PAUSE);
}

/** Waits while paused, serving commands. Returns false when told to quit. */
function pausedLoop(): boolean {
  Atomics.store(ctl, C.STATE, C.PAUSED);
  Atomics.notify(ctl, C.STATE);
  for (;;) {
    const bell = doorbell.value;
    serveCommands();
    const req = Atomics.load(ctl, C.REQ);
    if (req === C.QUIT) return false;
    if (req === C.RUN) {
      deliverNmi();
      Atomics.store(ctl, C.STATE, C.RUNNING);
      Atomics.notify(ctl, C.STATE);
      return true;
    }
    doorbell.wait(bell);
  }
}

/** The bytes of QEMU's "Code=" window around RIP; a byte that cannot be read is null. */
function codeAroundRip(regs: Regs, sregs: Sregs): { code: Array<number | null>; codeIndex: number } {
  const { start, ripIndex } = codeWindow(regs.rip, sregs.cs.base);
  const paging = (sregs.cr0 & 0x80000000n) !== 0n;
  const code: Array<number | null> = [];
  let page = -1n;
  let pagePhys: bigint | null = null;
  for (let i = 0; i < DUMP_CODE_BYTES_TOTAL; i++) {
    const linear = start + BigInt(i);
    if (linear >> 12n !== page) {
      page = linear >> 12n;
      try {
        pagePhys = paging ? vcpu.translate(page << 12n) : (page << 12n) & 0xffffffffn;
      } catch {
        pagePhys = null;
      }
    }
    const gpa = pagePhys === null ? -1 : Number(pagePhys + (linear & 0xfffn));
    code.push(gpa >= 0 && memory.contains(gpa, 1) ? memory.readU8(gpa) : null);
  }
  return { code, codeIndex: ripIndex };
}

function reportError(exit: VcpuExit, why?: string): void {
  let regs: Regs | null = null;
  let sregs: Sregs | null = null;
  let code: Array<number | null> | null = null;
  let codeIndex = 0;
  try {
    regs = vcpu.getRegs();
    sregs = vcpu.getSregs();
    ({ code, codeIndex } = codeAroundRip(regs, sregs));
  } catch {
    // The dump is best effort; the error itself is what matters.
  }
  post({ type: 'internal-error', exit, ...(why !== undefined ? { why } : {}), regs, sregs, code, codeIndex });
}

/** KVM's own Hyper-V crash report (a CRASH system event): the parameters are in P0..P4. */
function kvmHypervCrashInfo(): GuestPanicInformation | undefined {
  try {
    const [a1, a2, a3, a4, a5] = vcpu.getMsrs([0x40000100, 0x40000101, 0x40000102, 0x40000103, 0x40000104]).map((m) => m.data);
    return { type: 'hyper-v', arg1: a1 ?? 0n, arg2: a2 ?? 0n, arg3: a3 ?? 0n, arg4: a4 ?? 0n, arg5: a5 ?? 0n };
  } catch {
    return undefined; // the panic is reported anyway, without its parameters
  }
}

function onAction(action: ExitAction): void {
  switch (action.kind) {
    case 'continue':
      break;
    case 'warn':
      if (!warned.has(action.key)) {
        warned.add(action.key);
        post({ type: 'warning', key: action.key, message: action.message });
      }
      return;
    case 'harvest-dirty-ring':
      if (dirtyRing) {
        dirtyRing.harvest();
        vm.resetDirtyRings();
      }
      return;
    case 'halt':
      // No in-kernel irqchip to wake us: sleep until kicked (or a short timeout to re-check).
      doorbell.wait(doorbell.value, 10);
      return;
    case 'reset':
      selfPause();
      post({ type: 'request', kind: 'reset', reason: action.reason });
      return;
    case 'shutdown':
      selfPause();
      post({ type: 'request', kind: 'shutdown', reason: action.reason });
      return;
    case 'guest-panic':
      selfPause();
      post({ type: 'request', kind: 'guest-panic', ...(data.config.hvCrash === 'kvm' ? { info: kvmHypervCrashInfo() } : {}) });
      return;
    case 'internal-error':
      selfPause();
      reportError(action.exit, action.why);
      return;
    case 'debug':
      selfPause();
      post({ type: 'debug', exit: action.exit });
      return;
    case 'breakpoint':
      onBreakpoint(action.gva, action.emulated);
      return;
    case 'singlestep': {
      const r = awaitReply({ kind: 'singlestep', failed: false });
      if (r?.action === 'crash') selfPause();
      return;
    }
    case 'msr-write':
      onMsrWrite(action.index, action.value);
      return;
    case 'ram-write': {
      // KVM has run the instruction but for its store: CONTINUE (or a RETRY on a page no
      // longer protected, which the main thread turns into CONTINUE) performs it.
      const r = awaitReply({ kind: 'pf', gpa: BigInt(action.gpa) });
      if (r?.action === 'continue') memory.write(action.gpa, action.data);
      else if (r?.action === 'crash') selfPause();
      return;
    }
  }
}

function main(): void {
  const blocked = pthreadSigmask(SIG_BLOCK, kickSet, null);
  if (blocked !== 0) throw new Error('pthread_sigmask failed');
  // KVM's SIGBUS for a poisoned guest page, like a kick, is taken only inside KVM_RUN (which
  // then returns EINTR) and collected with sigtimedwait: never Node's default (death).
  blockSigbus();
  vcpu.setSignalMask(sigset()); // inside KVM_RUN nothing is blocked: a kick interrupts it
  Atomics.store(ctl, C.TID, gettid());
  post({ type: 'ready', tid: gettid() });

  for (;;) {
    if (Atomics.load(ctl, C.REQ) !== C.RUN) {
      if (!pausedLoop()) break;
      continue;
    }
    const result = vcpu.runOnce();
    if (result === 'exit') exceptionQueued = false; // the guest was entered with it
    if (result === 'interrupted') {
      drainKicks();
      continue;
    }
    ctl[C.EXITS]!++;
    const action = handleExit(decoder.decode(), ctx);
    if (action.kind !== 'continue') onAction(action);
    if (pendingRequest !== null) {
      selfPause();
      post(pendingRequest);
      pendingRequest = null;
    }
  }
  Atomics.store(ctl, C.STATE, C.EXITED);
  Atomics.notify(ctl, C.STATE);
  port.close();
}

try {
  main();
} catch (e) {
  Atomics.store(ctl, C.STATE, C.EXITED);
  Atomics.notify(ctl, C.STATE);
  post({ type: 'fatal', message: e instanceof Error ? e.message : String(e) });
}
