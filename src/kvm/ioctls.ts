/** KVM ioctl request numbers, computed the way <linux/kvm.h> defines them. */
const KVMIO = 0xae;
const IOC_WRITE = 1;
const IOC_READ = 2;

function ioc(dir: number, nr: number, size: number): number {
  return ((dir << 30) | (size << 16) | (KVMIO << 8) | nr) >>> 0;
}
const io = (nr: number): number => ioc(0, nr, 0);
const ior = (nr: number, size: number): number => ioc(IOC_READ, nr, size);
const iow = (nr: number, size: number): number => ioc(IOC_WRITE, nr, size);
const iowr = (nr: number, size: number): number => ioc(IOC_READ | IOC_WRITE, nr, size);

// System ioctls (on /dev/kvm).
export const KVM_GET_API_VERSION = io(0x00);
export const KVM_CREATE_VM = io(0x01);
export const KVM_GET_MSR_INDEX_LIST = iowr(0x02, 4);
export const KVM_CHECK_EXTENSION = io(0x03);
export const KVM_GET_VCPU_MMAP_SIZE = io(0x04);
export const KVM_GET_SUPPORTED_CPUID = iowr(0x05, 8);

// VM ioctls.
export const KVM_CREATE_VCPU = io(0x41);
export const KVM_SET_USER_MEMORY_REGION = iow(0x46, 32);
export const KVM_SET_TSS_ADDR = io(0x47);
export const KVM_SET_IDENTITY_MAP_ADDR = iow(0x48, 8);
export const KVM_CREATE_IRQCHIP = io(0x60);
export const KVM_IRQ_LINE = iow(0x61, 8);
export const KVM_GET_IRQCHIP = iowr(0x62, 520);
export const KVM_SET_IRQCHIP = ior(0x63, 520);
export const KVM_SET_GSI_ROUTING = iow(0x6a, 8);
export const KVM_CREATE_PIT2 = iow(0x77, 64);
export const KVM_GET_PIT2 = ior(0x9f, 112);
export const KVM_SET_PIT2 = iow(0xa0, 112);
export const KVM_ENABLE_CAP = iow(0xa3, 104);
/** sizeof(struct kvm_msr_filter): u32 flags, then 16 ranges of 24 bytes from offset 8. */
export const KVM_MSR_FILTER_SIZE = 8 + 16 * 24;
export const KVM_X86_SET_MSR_FILTER = iow(0xc6, KVM_MSR_FILTER_SIZE);
export const KVM_RESET_DIRTY_RINGS = io(0xc7);

// vCPU ioctls.
export const KVM_RUN = io(0x80);
export const KVM_GET_REGS = ior(0x81, 144);
export const KVM_SET_REGS = iow(0x82, 144);
export const KVM_GET_SREGS = ior(0x83, 312);
export const KVM_SET_SREGS = iow(0x84, 312);
export const KVM_GET_MSRS = iowr(0x88, 8);
export const KVM_SET_MSRS = iow(0x89, 8);
export const KVM_SET_SIGNAL_MASK = iow(0x8b, 4);
export const KVM_GET_FPU = ior(0x8c, 416);
export const KVM_SET_FPU = iow(0x8d, 416);
export const KVM_GET_LAPIC = ior(0x8e, 1024);
export const KVM_SET_LAPIC = iow(0x8f, 1024);
export const KVM_SET_CPUID2 = iow(0x90, 8);
export const KVM_GET_MP_STATE = ior(0x98, 4);
export const KVM_SET_MP_STATE = iow(0x99, 4);
export const KVM_NMI = io(0x9a);
export const KVM_GET_VCPU_EVENTS = ior(0x9f, 64);
export const KVM_SET_VCPU_EVENTS = iow(0xa0, 64);
export const KVM_GET_XSAVE = ior(0xa4, 4096);
export const KVM_SET_XSAVE = iow(0xa5, 4096);
export const KVM_GET_XCRS = ior(0xa6, 392);
export const KVM_SET_XCRS = iow(0xa7, 392);
export const KVM_TRANSLATE = iowr(0x85, 24);
/** struct kvm_guest_debug: u32 control, u32 pad, u64 debugreg[8]. */
export const KVM_SET_GUEST_DEBUG = iow(0x9b, 72);

/** Names for error messages: "KVM_RUN failed: EFAULT". */
export const IOCTL_NAMES: ReadonlyMap<number, string> = new Map(Object.entries({
  KVM_GET_API_VERSION, KVM_CREATE_VM, KVM_GET_MSR_INDEX_LIST, KVM_CHECK_EXTENSION, KVM_GET_VCPU_MMAP_SIZE,
  KVM_GET_SUPPORTED_CPUID, KVM_CREATE_VCPU, KVM_SET_USER_MEMORY_REGION, KVM_SET_TSS_ADDR,
  KVM_SET_IDENTITY_MAP_ADDR, KVM_CREATE_IRQCHIP, KVM_IRQ_LINE, KVM_GET_IRQCHIP, KVM_SET_IRQCHIP,
  KVM_SET_GSI_ROUTING, KVM_CREATE_PIT2, KVM_GET_PIT2, KVM_SET_PIT2, KVM_ENABLE_CAP, KVM_X86_SET_MSR_FILTER, KVM_RESET_DIRTY_RINGS, KVM_RUN, KVM_GET_REGS, KVM_SET_REGS,
  KVM_GET_SREGS, KVM_SET_SREGS, KVM_GET_MSRS, KVM_SET_MSRS, KVM_SET_SIGNAL_MASK, KVM_GET_FPU, KVM_SET_FPU,
  KVM_GET_LAPIC, KVM_SET_LAPIC, KVM_SET_CPUID2, KVM_GET_MP_STATE, KVM_SET_MP_STATE, KVM_NMI,
  KVM_GET_VCPU_EVENTS, KVM_SET_VCPU_EVENTS, KVM_GET_XSAVE, KVM_SET_XSAVE, KVM_GET_XCRS, KVM_SET_XCRS, KVM_TRANSLATE,
}).map(([name, nr]) => [nr, name]));
