/**
 * A machine: one KVM VM with its RAM, vCPU threads and legacy devices, built from a
 * MachineConfig. It owns boot, reset, pause/resume and teardown. Adapters (the CLI, later
 * QMP, introspection and the debugger) drive it through this object and its events.
 */
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { vcpuCpuid } from '../arch/x86/cpuid.js';
import { e820Map, ramLayout, type RamLayout } from '../arch/x86/e820.js';
import { pcIrqRoutes } from '../arch/x86/irq-routing.js';
import { defaultFpu, encodeKvmFpu } from '../arch/x86/fpu.js';
import { FOUR_GIB, KVM_IDENTITY_MAP_ADDR, KVM_TSS_ADDR } from '../arch/x86/layout.js';
import { bootMsrs } from '../arch/x86/msrs.js';
import { writeMpTable } from '../arch/x86/mptable.js';
import { FACS_FIRMWARE_WAKING_VECTOR } from '../arch/x86/acpi/facs.js';
import { writeAcpiTables, type AcpiTablesLayout } from '../arch/x86/acpi/tables.js';
import { realModeWakeEntry } from '../arch/x86/boot-cpu.js';
import type { Chardev } from '../chardev/chardev.js';
import { openChardev } from '../chardev/open.js'; 
import { ImageError, NodevisorError } from '../errors.js';
import type { Hypervisor, HypervisorVm } from '../hypervisor/hypervisor.js';
import { replacePages } from '../kvm/hwpoison.js';
import { Kvm } from '../kvm/kvm.js';
import { QEMU_MCG_CAP } from '../runstate/memory-failure.js';
import { loadKernel } from '../loader/load-kernel.js';
import type { BootResult } from '../loader/boot.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { RamMapping } from '../memory/ram.js';
import {
  DEFAULT_ACTIONS, panicOutcome, resetOutcome, shutdownOutcome, watchdogOutcome, withNoReboot, type ActionPolicy,
} from '../runstate/actions.js';
import { timestamp, type GuestPanicInformation, type QmpEvent, type QmpTimestamp } from '../runstate/events.js';
import { RunStateMachine, stateAfterReset, stateNeedsReset, type RunState } from '../runstate/run-state.js';
import { isGuestCause, type ShutdownCause } from '../runstate/shutdown-cause.js';
import type { FakeHypervisor } from '../testing/fake-hypervisor.js';
import { exitReasonName } from '../vcpu/exit-reason.js';
import { exitReport } from '../vcpu/exit-report.js';
import type { IntrospectionExit, IntrospectionState, VcpuBackend, VcpuEvent, VcpuRunConfig } from '../vcpu/messages.js';
import { VcpuThread } from '../vcpu/vcpu-thread.js';
import {
  enableUserSpaceMsrs, HYPERV_CRASH_MSR_FILTER, setUpAccelerator, setUpHypervCrash, type AcceleratorInfo,
} from './accelerator.js';
import { withHypervCrash } from '../arch/x86/hyperv-crash.js';
import { monotonicMs } from '../devices/legacy/ib700.js';
import { DEFAULT_ACCEL, type MachineConfig } from './config.js';
import { buildDevices, createDevicePlan, type Devices } from './devices.js';

/** QEMU's run state (see src/runstate/run-state.ts). */
export type MachineStatus = RunState;

/** Receives a vCPU's introspection event; the vCPU waits for `introspectionVcpu(i).replyEvent`. */
export type IntrospectionHandler = (vcpu: number, event: IntrospectionExit, state: IntrospectionState | null) => void;

/** Why a machine ended (the shutdown cause, or `fatal` for a VMM failure), and the exit status. */
export interface MachineEnd {
  /** `watchdog`: the watchdog's `poweroff` action, which QEMU ends with exit(0) and no SHUTDOWN. */
  readonly reason: ShutdownCause | 'fatal' | 'watchdog';
  readonly exitCode: number;
  readonly message?: string;
}

export interface MachineEvents {
  /** Bytes the guest wrote to COM1, in order. */
  serial: [Uint8Array];
  /** The machine was reset and boots again. */
  reset: [{ guest: boolean; reason: string }];
  /** A vCPU stopped on an error KVM reported; `report` is QEMU's text for it. */
  'internal-error': [{ vcpu: number; report: string }];
  /** The machine has ended (all vCPUs stopped, output flushed). */
  end: [MachineEnd];
  /** A QMP event (SHUTDOWN, RESET, STOP, RESUME, ...), in the order QEMU emits them. */
  qmp: [QmpEvent, QmpTimestamp];
  /** The run state changed. */
  state: [RunState, RunState];
  /** Something an operator should know (printed by the CLI as `nodevisor: warning: ...`). */
  warning: [string];
  /** A line QEMU prints on stderr as it is (the watchdog's `debug` action). */
  log: [string];
}

export interface MachineOptions {
  /** The KVM device (tests point it elsewhere to check error paths). */
  readonly kvmDevice?: string;
  /** Where COM1 goes; by default the one the config names. */
  readonly serial?: Chardev;
  /** What guest resets, shutdowns and panics lead to (`-action`); default: QEMU's, with `noReboot`. */
  readonly actions?: ActionPolicy;
  /**
   * Tests only: run on the scripted fake hypervisor instead of KVM, so exits this host cannot
   * produce go through the real exit handling. Never offered on the command line.
   */
  readonly fakeHypervisor?: FakeHypervisor;
}

/** KVM_MEM_READONLY: guest writes to the slot exit as MMIO. */
const KVM_MEM_READONLY = 2;

/** One RAM memory slot as given to KVM_SET_USER_MEMORY_REGION. */
interface RamSlot {
  id: number;
  gpa: number;
  size: number;
  hostAddress: bigint;
  readonly: boolean;
}

export class Machine {
  readonly events = new EventEmitter<MachineEvents>();
  private readonly runState = new RunStateMachine('prelaunch');
  private actions: ActionPolicy;
  private endValue: MachineEnd | null = null;
  private readonly endPromise: Promise<MachineEnd>;
  private resolveEnd!: (e: MachineEnd) => void;
  private busy: Promise<void> = Promise.resolve();
  private pendingInput: Uint8Array[] = [];
  private inputTimer: NodeJS.Timeout | null = null;
  private draining = true;
  private drainDone: Promise<void> = Promise.resolve();

  private constructor(
    readonly config: MachineConfig,
    private readonly kvm: Hypervisor,
    private readonly vm: HypervisorVm,
    private readonly ram: RamMapping,
    readonly layout: RamLayout,
    private readonly devices: Devices,
    private readonly vcpus: VcpuThread[],
    private readonly vcpuFds: number[],
    private readonly kernel: Uint8Array,
    private readonly initrd: Uint8Array | undefined,
    private readonly serial: Chardev,
    actions: ActionPolicy | undefined,
    /** The accelerator's properties in force and what the host offers (x-query-accel). */
    readonly accelerator: AcceleratorInfo,
  ) {
    this.actions = actions ?? (config.noReboot ? withNoReboot({ ...DEFAULT_ACTIONS }) : { ...DEFAULT_ACTIONS });
    this.runState.onChange((to, from) => this.events.emit('state', to, from));
    // Warnings from building the machine wait for whoever listens first (the CLI subscribes
    // once create() has returned).
    (this.events as EventEmitter).on('newListener', (name: string | symbol, listener: (w: string) => void) => {
      if (name !== 'warning' || this.earlyWarnings.length === 0) return;
      for (const w of this.earlyWarnings.splice(0)) listener(w);
    });
    this.endPromise = new Promise((resolve) => { this.resolveEnd = resolve; });
  }

  /** Builds the VM. Nothing runs until `start()`. On failure everything made so far is undone. */
  static async create(config: MachineConfig, options: MachineOptions = {}): Promise<Machine> {
    // Read images first: a bad path should not cost a VM.
    const kernel = readImage(config.kernel);
    const initrd = config.initrd !== undefined ? readImage(config.initrd) : undefined;

    const undo: Array<() => void> = [];
    try {
      const kvm: Hypervisor = options.fakeHypervisor ?? Kvm.open(options.kvmDevice);
      const backend: VcpuBackend = options.fakeHypervisor ? { kind: 'fake', script: options.fakeHypervisor.script } : { kind: 'kvm' };
      undo.push(() => kvm.close());
      const maxVcpus = kvm.checkExtension('MAX_VCPUS') || kvm.checkExtension('NR_VCPUS');
      if (config.cpus > maxVcpus) {
        throw new NodevisorError('ERR_BAD_STATE', `Number of SMP CPUs requested (${config.cpus}) exceeds max CPUs supported by machine 'pc' (${maxVcpus})`);
      }
      const accel = config.accel ?? { ...DEFAULT_ACCEL };
      const vm = kvm.createVm();
      undo.push(() => vm.close());
      const warnings: string[] = [];
      const accelerator = setUpAccelerator(kvm, vm, accel, config.cpus, (w) => warnings.push(w));
      vm.setTssAddr(KVM_TSS_ADDR);
      vm.setIdentityMapAddr(KVM_IDENTITY_MAP_ADDR);
      if (accel.kernelIrqchip === 'on') {
        vm.createIrqchip();
        vm.setGsiRouting(pcIrqRoutes());
        vm.createPit2();
      }
      const hvCrash = config.cpu.hvCrash === true ? setUpHypervCrash(kvm, vm) : 'off';
      // Introspection's MSR events use the same user-space MSR exits (set up now: before vCPUs).
      let userSpaceMsrs = hvCrash === 'user';
      if (!userSpaceMsrs) {
        try {
          userSpaceMsrs = enableUserSpaceMsrs(vm);
        } catch {
          userSpaceMsrs = false; // no MSR events, nothing else lost
        }
      }
      const runConfig: VcpuRunConfig = {
        notifyVmexit: accel.notifyVmexit, irqchip: accel.kernelIrqchip === 'on', dirtyRingEntries: accel.dirtyRingSize,
        hvCrash,
      };

      const layout = ramLayout(config.memorySize);
      const slots = [{ gpa: 0, size: layout.lowSize }];
      if (layout.highSize > 0) slots.push({ gpa: FOUR_GIB, size: layout.highSize });
      const ram = new RamMapping(slots);
      undo.push(() => ram.unmap());
      ram.memory.regions.forEach((r, slot) => vm.setUserMemoryRegion(slot, r.gpa, r.size, r.hostAddress));

      const serial = options.serial ?? await openChardev(config.serial);
      undo.push(() => void serial.close());

      const plan = createDevicePlan(layout.lowSize, layout.highSize, config.devices ?? [], hvCrash === 'user');
      const supportedCpuid = kvm.supportedCpuid();
      const runSize = kvm.vcpuMmapSize();
      const vcpuFds: number[] = [];
      const vcpus: VcpuThread[] = [];
      undo.push(() => vcpuFds.forEach((fd) => vm.closeVcpu(fd)));
      const ramInfo = ram.memory.regions.map((r) => ({ gpa: r.gpa, size: r.size, hostAddress: r.hostAddress }));
      for (let i = 0; i < config.cpus; i++) {
        const fd = vm.createVcpu(i);
        vcpuFds.push(fd);
        const runAddress = vm.mapRun(fd, runSize);
        vcpus.push(new VcpuThread({
          index: i, vmFd: vm.fd, vcpuFd: fd, runAddress, runSize, devices: plan, ram: ramInfo, config: runConfig, backend,
        }));
      }
      undo.push(() => vcpus.forEach((v) => void v.quit()));

      const main = new Machine(config, kvm, vm, ram, layout, buildDevices(plan, {
        irq: (line) => ({ set: (level) => { if (runConfig.irqchip) vm.irqLine(line, level); } }),
        // Host-side accesses never make these requests; the guest's come from vCPU threads.
        requests: { reset: () => undefined, shutdown: () => undefined },
        guest: { panicked: () => undefined, crashLoaded: () => undefined, sleep: () => undefined },
        // The main thread only feeds COM1's receiver; its transmitter runs in vCPU threads.
        serialSink: (ring) => ({ write: (b) => void ring.push(b) }),
      }), vcpus, vcpuFds, kernel, initrd, serial, options.actions, accelerator);
      main.earlyWarnings.push(...warnings);
      main.userSpaceMsrs = userSpaceMsrs;
      main.ramSlots = ram.memory.regions.map((r, id) => ({ id, gpa: r.gpa, size: r.size, hostAddress: r.hostAddress, readonly: false }));
      main.hvCrashFilter = hvCrash === 'user';

      const boot = main.loadImages();
      const msrs = bootMsrs();
      // QEMU's machine-check banks, as far as KVM can emulate them (none without KVM_CAP_MCE).
      const mceSupported = kvm.supportedMceCap();
      const mcgCap = mceSupported !== 0n ? QEMU_MCG_CAP & (mceSupported | 0xffn) : null;
      const fpu = encodeKvmFpu(defaultFpu());
      for (const v of vcpus) {
        const cpuid = vcpuCpuid(supportedCpuid, {
          vcpuIndex: v.index, apicId: v.index, cpus: config.cpus, features: config.cpu.features,
        });
        const { warnings } = cpuid;
        const entries = hvCrash !== 'off' ? withHypervCrash(cpuid.entries) : cpuid.entries;
        main.earlyWarnings.push(...warnings); // QEMU warns once per vCPU
        await v.setup({ cpuid: entries, msrs, fpu, boot: v.index === 0 ? boot.cpu : null, mcgCap });
      }
      if (runConfig.irqchip) {
        main.initialIrqchip = [0, 1, 2].map((chip) => vm.getIrqchip(chip));
        main.initialPit = vm.getPit2();
      }
      for (const v of vcpus) v.events.on('event', (e) => main.onVcpuEvent(v.index, e));
      main.startDrain();
      main.startWatchdog();
      serial.onInput((bytes) => main.sendSerialInput(bytes));
      return main;
    } catch (e) {
      for (const f of undo.reverse()) f();
      throw e;
    }
  }

  private initialIrqchip: Uint8Array[] = [];
  private initialPit: Uint8Array | null = null;
  /** Whether filtered MSR accesses exit to user space (KVM_CAP_X86_USER_SPACE_MSR is on). */
  private userSpaceMsrs = false;
  /** hv-crash's MSRs are in the MSR filter (they stay there whatever introspection does). */
  private hvCrashFilter = false;
  private introspectionHandler: IntrospectionHandler | null = null;
  /** The RAM memory slots as KVM has them (split around write-protected pages). */
  private ramSlots: RamSlot[] = [];

  get status(): MachineStatus {
    return this.runState.state;
  }

  /** The -action policy in force (set-action changes it). */
  get actionPolicy(): Readonly<ActionPolicy> {
    return this.actions;
  }

  setActions(changes: Partial<ActionPolicy>): void {
    this.actions = { ...this.actions, ...changes };
  }

  get memory(): GuestMemory {
    return this.ram.memory;
  }

  get cpuCount(): number {
    return this.vcpus.length;
  }

  /** Exits handled by each vCPU so far. */
  exitCounts(): number[] {
    return this.vcpus.map((v) => v.exitCount);
  }

  /** The kernel thread id of each vCPU thread (QMP's query-cpus-fast `thread-id`). */
  vcpuThreadIds(): number[] {
    return this.vcpus.map((v) => v.threadId);
  }

  /** Where the ACPI tables are (the FACS holds the guest's S3 waking vector). */
  private acpi: AcpiTablesLayout | null = null;

  /** Places kernel, initrd, boot tables in RAM; returns the boot CPU's state. */
  private loadImages(): BootResult {
    const mem = this.ram.memory;
    writeMpTable(mem, this.config.cpus);
    const pvpanic = (this.config.devices ?? []).find((d) => d.driver === 'pvpanic');
    this.acpi = writeAcpiTables(mem, { cpus: this.config.cpus, ...(pvpanic ? { pvpanicPort: pvpanic.ioport } : {}) });
    return loadKernel({
      kernelPath: this.config.kernel, kernel: this.kernel,
      ...(this.config.initrd !== undefined && this.initrd !== undefined
        ? { initrdPath: this.config.initrd, initrd: this.initrd } : {}),
      cmdline: this.config.append, memory: mem, layout: this.layout, e820: e820Map(this.layout), rsdpAddr: this.acpi.rsdpAddr,
    }, { decompressOnHost: (this.config.kernelDecompress ?? 'host') === 'host' });
  }

  /** Emits a QMP event: the one place events leave the machine. */
  private emitQmp(e: QmpEvent): void {
    this.events.emit('qmp', e, timestamp());
  }

  /** Starts the guest (QEMU without -S; with -S, the first `cont`). */
  start(): Promise<void> {
    return this.resume();
  }

  /** Resolves when the machine has ended, with why and the exit status. */
  waitForEnd(): Promise<MachineEnd> {
    return this.endPromise;
  }

  /** Serializes machine-level operations: a reset never interleaves with a pause. */
  private exclusive(fn: () => Promise<void>): Promise<void> {
    const next = this.busy.then(fn, fn);
    this.busy = next.catch(() => undefined);
    return next;
  }

  private async pauseVcpus(): Promise<void> {
    await Promise.all(this.vcpus.map((v) => v.pause()));
  }

  /** Stops every running vCPU and enters `state` (QEMU's vm_stop): STOP if it was running. */
  private async vmStop(state: RunState): Promise<void> {
    if (this.runState.state !== 'running') {
      if (state !== 'paused') this.runState.transition(state);
      return;
    }
    await this.pauseVcpus();
    this.devices.ib700?.stopClock(); // QEMU's watchdog runs on the VM clock, which stops with the VM
    this.runState.transition(state);
    this.emitQmp({ event: 'STOP' });
  }

  /** QMP `stop`: every vCPU stopped within milliseconds, whatever the guest is doing. */
  pause(): Promise<void> {
    return this.exclusive(() => this.vmStop('paused'));
  }

  /** QMP `cont`: runs the vCPUs (RESUME). Refused in a state that needs a reset. */
  resume(): Promise<void> {
    return this.exclusive(async () => {
      if (this.endStarted || this.runState.state === 'running') return;
      if (stateNeedsReset(this.runState.state)) {
        throw new NodevisorError('ERR_BAD_STATE', 'Resetting the Virtual Machine is required');
      }
      this.runState.transition('running');
      this.emitQmp({ event: 'RESUME' });
      this.devices.ib700?.startClock();
      for (const v of this.vcpus) v.resume();
    });
  }

  /**
   * A reset request (QEMU's qemu_system_reset_request): a RESET and every vCPU and device
   * back to power-on with the kernel loaded again, or, when the reboot action is `shutdown`
   * (-no-reboot), a shutdown request with the same cause.
   */
  reset(cause: ShutdownCause = 'host-qmp-system-reset'): Promise<void> {
    if (resetOutcome(this.actions, cause) === 'shutdown') return this.requestShutdown(cause);
    return this.exclusive(async () => {
      if (this.endStarted) return;
      await this.pauseVcpus(); // a vCPU that asked for the reset has already paused itself
      this.emitQmp({ event: 'RESET', data: { guest: isGuestCause(cause), reason: cause } });
      this.devices.lock.with(() => this.devices.reset());
      for (const p of this.poisonedPages.splice(0)) replacePages(p.hostAddress, p.size);
      this.initialIrqchip.forEach((st) => this.vm.setIrqchip(st));
      if (this.initialPit) this.vm.setPit2(this.initialPit);
      const boot = this.loadImages();
      for (const v of this.vcpus) await v.reset(v.index === 0 ? boot.cpu : null);
      this.events.emit('reset', { guest: isGuestCause(cause), reason: cause });
      const next = stateAfterReset(this.runState.state);
      if (next !== this.runState.state) this.runState.transition(next);
      if (this.runState.state === 'running') for (const v of this.vcpus) v.resume();
    });
  }

  /**
   * A shutdown request (QEMU's qemu_system_shutdown_request): SHUTDOWN, then either the end
   * of the machine or, when the shutdown action is `pause` (-no-shutdown), the VM stopped in
   * state `shutdown`.
   */
  requestShutdown(cause: ShutdownCause, exitCode = 0): Promise<void> {
    return this.exclusive(async () => {
      if (this.endStarted) return;
      this.emitQmp({ event: 'SHUTDOWN', data: { guest: isGuestCause(cause), reason: cause } });
      if (shutdownOutcome(this.actions, cause) === 'pause') {
        await this.vmStop('shutdown');
        return;
      }
      void this.end({ reason: cause, exitCode });
    });
  }

  /** Ends the machine from the host side: `quit` (QMP), or a signal (`host-signal`). */
  async quit(cause: 'host-qmp-quit' | 'host-signal' | 'host-ui' = 'host-qmp-quit'): Promise<MachineEnd> {
    await this.requestQuit(cause);
    return this.endPromise;
  }

  /**
   * Starts ending the machine and resolves once SHUTDOWN has been emitted, before the end
   * completes (QMP `quit` replies after the event, then the process exits). It waits for a
   * reset or stop already under way, so no event of theirs can follow the SHUTDOWN.
   */
  requestQuit(cause: 'host-qmp-quit' | 'host-signal' | 'host-ui' = 'host-qmp-quit'): Promise<void> {
    return this.exclusive(async () => {
      if (this.endStarted) return;
      this.emitQmp({ event: 'SHUTDOWN', data: { guest: false, reason: cause } });
      void this.end({ reason: cause, exitCode: 0 });
    });
  }

  /**
   * An ACPI power-button press (QMP system_powerdown, the watchdog's `shutdown`): POWERDOWN,
   * and PWRBTN_STS with an SCI if the guest enabled it. What the guest does with it is its own
   * business (QEMU's guests without ACPI drivers ignore it too).
   */
  powerdown(): void {
    this.emitQmp({ event: 'POWERDOWN' });
    this.withDeviceLock(() => this.devices.pm.pressPowerButton());
  }

  /**
   * Runs `fn` under the device lock without ever blocking the event loop (a vCPU may hold the
   * lock while it waits for this thread to drain its serial output): retried until free.
   */
  private withDeviceLock(fn: () => void): void {
    if (this.endStarted) return;
    if (this.devices.lock.tryLock()) {
      try {
        fn();
      } finally {
        this.devices.lock.unlock();
      }
      return;
    }
    setTimeout(() => this.withDeviceLock(fn), 1);
  }

  /**
   * QMP system_wakeup from S3: QEMU resets the machine without a RESET event and its firmware
   * jumps to the waking vector the OS left in the FACS. nodevisor does the firmware's part:
   * devices back to power-on with WAK_STS set, APs waiting for SIPI, the boot CPU in real mode
   * at the vector (or, when the OS left none, booting the kernel again), then WAKEUP.
   */
  wakeup(): Promise<void> {
    return this.exclusive(async () => {
      if (this.endStarted || this.runState.state !== 'suspended') return;
      this.devices.lock.with(() => {
        this.devices.reset();
        this.devices.pm.wake();
      });
      this.initialIrqchip.forEach((st) => this.vm.setIrqchip(st));
      if (this.initialPit) this.vm.setPit2(this.initialPit);
      const vector = this.acpi ? this.ram.memory.readU32(this.acpi.facsAddr + FACS_FIRMWARE_WAKING_VECTOR) : 0;
      const boot = vector !== 0 ? realModeWakeEntry(vector) : this.loadImages().cpu;
      for (const v of this.vcpus) await v.reset(v.index === 0 ? boot : null);
      this.runState.transition('running');
      for (const v of this.vcpus) v.resume();
      this.emitQmp({ event: 'WAKEUP' });
    });
  }

  /**
   * The guest reported a panic (pvpanic, Hyper-V crash MSRs, KVM's crash event): QEMU 7.2's
   * qemu_system_guest_panicked() under the -action policy. The vCPU that reported it has
   * stopped itself; it runs on only when the action is `none`.
   */
  guestPanicked(info?: GuestPanicInformation): Promise<void> {
    const outcome = panicOutcome(this.actions);
    this.emitQmp({ event: 'GUEST_PANICKED', data: { action: outcome.event, ...(info ? { info } : {}) } });
    if (info?.type === 'hyper-v') {
      const args = [info.arg1, info.arg2, info.arg3, info.arg4, info.arg5].map((a) => `0x${a.toString(16)}`).join(' ');
      this.events.emit('warning', `guest panicked: Hyper-V crash parameters (${args})`);
    }
    if (outcome.stop) return this.exclusive(() => this.vmStop('guest-panicked'));
    if (outcome.shutdown) return this.requestShutdown('guest-panic', outcome.exitFailure ? 1 : 0);
    return this.exclusive(async () => {
      if (this.runState.state === 'running' && !this.endStarted) for (const v of this.vcpus) v.resume();
    });
  }

  private watchdogTimer: NodeJS.Timeout | null = null;

  /**
   * Follows the ib700's shared state from the main thread: whenever its generation changes
   * (armed, disarmed, clock stopped or started, in any thread), the one timer is set again.
   */
  private startWatchdog(): void {
    const wd = this.devices.ib700;
    if (!wd) return;
    void (async () => {
      while (!this.endStarted) {
        const generation = Atomics.load(wd.generationCell, 0);
        if (this.watchdogTimer) clearTimeout(this.watchdogTimer);
        this.watchdogTimer = null;
        const armed = wd.armed();
        if (armed) {
          this.watchdogTimer = setTimeout(() => this.watchdogExpired(armed.generation), Math.max(0, armed.deadline - monotonicMs()));
        }
        // A pending waitAsync does not keep the process alive; end() wakes it.
        const w = Atomics.waitAsync(wd.generationCell, 0, generation);
        if (w.async) await w.value;
      }
    })();
  }

  /** The watchdog fired: WATCHDOG with the action in force, then what it means (QEMU 7.2). */
  private watchdogExpired(generation: number): void {
    this.watchdogTimer = null;
    if (this.endStarted || !this.devices.ib700?.expire(generation)) return;
    const action = this.actions.watchdog;
    this.emitQmp({ event: 'WATCHDOG', data: { action } });
    const outcome = watchdogOutcome(action);
    switch (outcome.kind) {
      case 'reset': void this.reset(outcome.cause); break;
      case 'powerdown': this.powerdown(); break;
      case 'exit': void this.end({ reason: 'watchdog', exitCode: outcome.status }); break;
      case 'stop': void this.exclusive(() => this.vmStop(outcome.state)); break;
      case 'log': this.events.emit('log', outcome.message); break;
      case 'nmi': this.injectNmi(); break;
      case 'none': break;
    }
  }

  /** Guest pages found poisoned: replaced with fresh ones at the next reset (QEMU does too). */
  private readonly poisonedPages: Array<{ hostAddress: bigint; size: number }> = [];

  /** A vCPU thread met a hardware memory error and applied QEMU's policy: report and follow. */
  private onMemoryFailure(e: Extract<VcpuEvent, { type: 'memory-failure' }>): void {
    if (e.event) this.emitQmp({ event: 'MEMORY_FAILURE', data: e.event });
    if (e.log) this.events.emit(e.log.level === 'error' ? 'log' : 'warning', e.log.level === 'error' ? `nodevisor: ${e.log.text}` : e.log.text);
    if (e.poisonedPage) this.poisonedPages.push(e.poisonedPage);
    if (e.next === 'reset') void this.reset('guest-reset');
    // QEMU exits at once, without SHUTDOWN: its own memory is gone.
    else if (e.next === 'exit') void this.end({ reason: 'fatal', exitCode: 1, message: 'hardware memory error in nodevisor\'s own memory' });
  }

  /** ACPI sleep states the guest entered through PM1a_CNT. */
  private guestSleep(state: 'S3' | 'S4' | 'S5'): Promise<void> {
    if (state === 'S5') return this.requestShutdown('guest-shutdown');
    if (state === 'S4') {
      // QEMU: SUSPEND_DISK, then an ordinary guest shutdown (the guest saved itself to disk).
      this.emitQmp({ event: 'SUSPEND_DISK' });
      return this.requestShutdown('guest-shutdown');
    }
    return this.suspend();
  }

  /** S3: every vCPU stopped, run state `suspended`, SUSPEND (QEMU emits no STOP here). */
  private suspend(): Promise<void> {
    return this.exclusive(async () => {
      if (this.endStarted || this.runState.state === 'suspended') return;
      await this.pauseVcpus();
      this.runState.transition('suspended');
      this.emitQmp({ event: 'SUSPEND' });
    });
  }

  /** QMP inject-nmi: an NMI to every vCPU. */
  injectNmi(): void {
    for (const v of this.vcpus) v.injectNmi();
  }

  /** Reads a vCPU's registers (the machine must be paused). */
  async vcpuState(index: number): Promise<Awaited<ReturnType<VcpuThread['getState']>>> {
    const v = this.vcpus[index];
    if (!v) throw new NodevisorError('ERR_BAD_STATE', `no vCPU ${index}`);
    if (this.runState.state !== 'running' && !this.endStarted) return v.getState();
    throw new NodevisorError('ERR_BAD_STATE', 'vCPU state can only be read while the machine is paused');
  }

  /**
   * Introspection: stops one vCPU out of guest mode while the machine runs (a machine that is
   * not running has every vCPU stopped already, and this does nothing). The hold is not
   * tracked here: QMP `cont`, a reset and a wakeup resume every vCPU, releasing it.
   */
  pauseVcpu(index: number): Promise<void> {
    const v = this.vcpus[index];
    if (!v) return Promise.reject(new NodevisorError('ERR_BAD_STATE', `no vCPU ${index}`));
    return this.exclusive(async () => {
      if (this.runState.state === 'running' && !this.endStarted) await v.pause();
    });
  }

  /** Introspection: lets a vCPU stopped by `pauseVcpu` run again, if the machine runs. */
  resumeVcpu(index: number): void {
    const v = this.vcpus[index];
    if (!v) throw new NodevisorError('ERR_BAD_STATE', `no vCPU ${index}`);
    void this.exclusive(async () => {
      if (this.runState.state === 'running' && !this.endStarted) v.resume();
    });
  }

  /**
   * Introspection: the reads a stopped vCPU's thread serves (registers, MSRs, XSAVE, XCRs) and
   * the CPUID table it was given. Each read waits until the vCPU is paused (`pauseVcpu`, or
   * the machine paused).
   */
  introspectionVcpu(index: number): Pick<
    VcpuThread,
    'getState' | 'getMsrs' | 'getXsave' | 'getXcrs' | 'cpuid' | 'setRegs' | 'injectException' | 'setGuestDebug' | 'replyEvent'
    | 'setEventMsrs' | 'setEventSlots' | 'doorbell'
  > {
    const v = this.vcpus[index];
    if (!v) throw new NodevisorError('ERR_BAD_STATE', `no vCPU ${index}`);
    return v;
  }

  /**
   * Introspection: where vCPU events (breakpoints, single steps, MSR writes) go. Each vCPU that
   * raised one waits for `introspectionVcpu(i).replyEvent`. Without a handler an event is
   * answered 'continue' at once (the guest's own behaviour). `state`: the vCPU at the event
   * (registers and the MSRs set with `setEventMsrs`), or null when its thread could not read it.
   */
  setIntrospectionHandler(handler: IntrospectionHandler | null): void {
    this.introspectionHandler = handler;
  }

  /**
   * Introspection: makes exactly these 4 KiB RAM pages (page-aligned gpas) read-only to the
   * guest: RAM is split into memory slots, the protected runs KVM_MEM_READONLY, so that guest
   * writes there exit as MMIO (and become introspection events). KVM cannot change a live
   * slot's flags, so slots are deleted and made again: every vCPU must be stopped meanwhile
   * (the caller's job), or a vCPU could touch RAM while its slot is missing.
   */
  setWriteProtectedPages(pages: readonly number[]): void {
    const protectedPages = [...new Set(pages.map((p) => p - (p % 4096)))].sort((a, b) => a - b);
    const next: Omit<RamSlot, 'id'>[] = [];
    for (const r of this.ram.memory.regions) {
      const end = r.gpa + r.size;
      const piece = (gpa: number, size: number, readonly: boolean): void => {
        next.push({ gpa, size, readonly, hostAddress: r.hostAddress + BigInt(gpa - r.gpa) });
      };
      let at = r.gpa;
      const inside = protectedPages.filter((p) => p >= r.gpa && p + 4096 <= end);
      for (let i = 0; i < inside.length;) {
        const start = inside[i]!;
        let stop = start + 4096;
        for (i++; i < inside.length && inside[i] === stop; i++) stop += 4096;
        if (start > at) piece(at, start - at, false);
        piece(start, stop - start, true);
        at = stop;
      }
      if (at < end) piece(at, end - at, false);
    }
    const same = (a: Omit<RamSlot, 'id'>, b: Omit<RamSlot, 'id'>): boolean => a.gpa === b.gpa && a.size === b.size && a.readonly === b.readonly;
    const keep = this.ramSlots.filter((s) => next.some((n) => same(s, n)));
    for (const s of this.ramSlots) {
      if (!keep.includes(s)) this.vm.setUserMemoryRegion(s.id, s.gpa, 0, s.hostAddress, s.readonly ? KVM_MEM_READONLY : 0);
    }
    const used = new Set(keep.map((s) => s.id));
    const slots = [...keep];
    for (const n of next) {
      if (keep.some((s) => same(s, n))) continue;
      let id = 0;
      while (used.has(id)) id++;
      used.add(id);
      this.vm.setUserMemoryRegion(id, n.gpa, n.size, n.hostAddress, n.readonly ? KVM_MEM_READONLY : 0);
      slots.push({ id, ...n });
    }
    this.ramSlots = slots;
  }

  /** The RAM ranges now read-only to the guest (write-protected for introspection), by address. */
  readOnlyRam(): Array<{ gpa: number; size: number }> {
    return this.ramSlots.filter((s) => s.readonly).map((s) => ({ gpa: s.gpa, size: s.size })).sort((a, b) => a.gpa - b.gpa);
  }

  /** Introspection: whether guest writes to MSRs can be intercepted (user-space MSR exits and the MSR filter). */
  get canInterceptMsrs(): boolean {
    return this.userSpaceMsrs;
  }

  /**
   * Introspection: guest writes to these MSRs, on every vCPU, exit to the VMM (a deny-write
   * MSR filter, VM-wide; hv-crash's MSRs stay in it). An empty list leaves only hv-crash's.
   */
  setInterceptedMsrs(msrs: readonly number[]): void {
    if (!this.userSpaceMsrs) throw new NodevisorError('ERR_KVM_UNAVAILABLE', 'this host cannot send MSR writes to user space');
    const base = this.hvCrashFilter ? HYPERV_CRASH_MSR_FILTER : [];
    const owned = new Set(base.map((m) => m.index));
    this.vm.setMsrFilter([...base, ...msrs.filter((i) => !owned.has(i)).map((index) => ({ index, read: false, write: true }))]);
  }

  /** Feeds bytes to COM1's receiver; what does not fit waits for the guest to read. */
  sendSerialInput(bytes: Uint8Array): void {
    this.pendingInput.push(bytes);
    this.pumpInput();
  }

  private pumpInput(): void {
    if (this.inputTimer) return;
    // Never block the event loop on the device lock: a vCPU may hold it while it waits
    // for this thread to drain its output.
    if (this.devices.lock.tryLock()) {
      try {
        while (this.pendingInput.length > 0) {
          const head = this.pendingInput[0]!;
          const n = this.devices.com1.receive(head);
          if (n < head.length) {
            this.pendingInput[0] = head.subarray(n);
            break;
          }
          this.pendingInput.shift();
        }
      } finally {
        this.devices.lock.unlock();
      }
    }
    if (this.pendingInput.length > 0 && !this.endValue) {
      this.inputTimer = setTimeout(() => {
        this.inputTimer = null;
        this.pumpInput();
      }, 5);
    }
  }

  /** Moves COM1 output from the shared ring to the chardev and listeners, until the end. */
  private startDrain(): void {
    const ring = this.devices.com1Tx;
    const drainOnce = (): void => {
      const bytes = ring.drain();
      if (bytes.length === 0) return;
      this.serial.write(bytes);
      this.events.emit('serial', bytes);
    };
    this.drainDone = (async () => {
      while (this.draining) {
        const head = ring.head;
        drainOnce();
        const w = Atomics.waitAsync(ring.control, 0, head, 200);
        if (w.async) await w.value;
      }
      drainOnce();
    })();
  }

  private onVcpuEvent(index: number, e: VcpuEvent): void {
    switch (e.type) {
      case 'ready':
        return;
      case 'request':
        if (e.kind === 'reset') void this.reset(e.reason);
        else if (e.kind === 'shutdown') void this.requestShutdown(e.reason);
        else if (e.kind === 'guest-panic') void this.guestPanicked(e.info);
        else void this.guestSleep(e.state);
        return;
      case 'memory-failure':
        this.onMemoryFailure(e);
        return;
      case 'notice':
        // QEMU: the crash kernel is loaded; nothing else happens.
        this.emitQmp({ event: 'GUEST_CRASHLOADED', data: { action: 'run' } });
        return;
      case 'warning':
        if (!this.warned.has(e.key)) {
          this.warned.add(e.key);
          this.events.emit('warning', `vCPU ${index}: ${e.message}`);
        }
        return;
      case 'internal-error': {
        // QEMU: report, stop the VM in internal-error (STOP), keep the process for management.
        const report = exitReport(e.exit, e.why, e.regs, e.sregs, e.code, e.codeIndex);
        this.events.emit('internal-error', { vcpu: index, report });
        void this.exclusive(() => this.vmStop('internal-error'));
        return;
      }
      case 'introspection': {
        const handler = this.introspectionHandler;
        if (handler !== null) handler(index, e.event, e.state);
        else this.vcpus[index]?.replyEvent('continue');
        return;
      }
      case 'debug':
        // No debugger attached yet: a debug exit we did not ask for is an error.
        void this.end({ reason: 'fatal', exitCode: 1, message: `vCPU ${index}: unexpected ${exitReasonName(4)}` });
        return;
      case 'fatal':
        void this.end({ reason: 'fatal', exitCode: 1, message: `vCPU ${index}: ${e.message}` });
        return;
    }
  }

  private endStarted = false;
  private readonly earlyWarnings: string[] = [];
  /** Warning keys already reported (QEMU's warn_report_once across vCPUs). */
  private readonly warned = new Set<string>();

  /** Stops everything, flushes guest output, releases KVM and RAM. Idempotent. */
  private readonly endHooks: Array<() => Promise<void>> = [];

  /**
   * Work to finish when the machine ends, before its vCPUs go (an introspection tool is sent
   * UNHOOK and given time to remove its hooks). A failing hook does not stop the end.
   */
  beforeEnd(hook: () => Promise<void>): void {
    this.endHooks.push(hook);
  }

  private async end(how: MachineEnd): Promise<MachineEnd> {
    if (this.endStarted) return this.endPromise;
    this.endStarted = true;
    for (const hook of this.endHooks.splice(0)) await hook().catch(() => undefined);
    await Promise.all(this.vcpus.map((v) => v.quit()));
    this.draining = false;
    // Wake the drain and watchdog loops now: a pending waitAsync does not keep the process alive.
    Atomics.notify(this.devices.com1Tx.control, 0);
    if (this.watchdogTimer) clearTimeout(this.watchdogTimer);
    if (this.devices.ib700) Atomics.notify(this.devices.ib700.generationCell, 0);
    await this.drainDone;
    if (this.inputTimer) clearTimeout(this.inputTimer);
    await this.serial.flush();
    await this.serial.close();
    this.vcpuFds.forEach((fd) => this.vm.closeVcpu(fd));
    this.vm.close();
    this.kvm.close();
    this.ram.unmap();
    this.endValue = how;
    this.events.emit('end', how);
    this.resolveEnd(how);
    return how;
  }
}

function readImage(path: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'No such file or directory' : code === 'EACCES' ? 'Permission denied'
      : code === 'EISDIR' ? 'Is a directory' : (e as Error).message;
    throw new ImageError(path, `could not read: ${why}`);
  }
}
