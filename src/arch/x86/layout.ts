/**
 * Where nodevisor puts things in guest-physical memory at boot (x86, PC-compatible).
 * The areas below 1 MiB follow the PC conventions Linux expects; everything the VMM writes
 * there is marked in the e820 map so the guest never reuses it by mistake.
 */
export const BOOT_GDT = 0x500; //            GDT for the boot CPU (4 entries)
export const BOOT_IDT = 0x520; //            empty IDT (limit 0)
export const PVH_START_INFO = 0x6000; //     struct hvm_start_info
export const PVH_MODLIST = 0x6040; //        struct hvm_modlist_entry[1]
export const PVH_MEMMAP = 0x6100; //         struct hvm_memmap_table_entry[]
export const ZERO_PAGE = 0x7000; //          Linux struct boot_params
export const BOOT_STACK = 0x8ff0; //         initial stack top for the boot CPU
export const PML4_START = 0x9000; //         identity page tables: PML4, PDPT, then 4 PDs
export const PDPTE_START = 0xa000;
export const PDE_START = 0xb000; //          0xb000..0xefff: 4 GiB of 2 MiB pages
export const CMDLINE_START = 0x20000; //     kernel command line
export const CMDLINE_MAX = 0x10000;
export const EBDA_START = 0x9fc00; //        extended BIOS data area (reserved)
export const LOW_RAM_END = 0xa0000; //       end of conventional memory
export const BIOS_START = 0xe0000; //        BIOS area: MP table, later the ACPI RSDP
export const MPTABLE_START = 0xf0000;
export const BIOS_END = 0x100000;
export const HIMEM_START = 0x100000; //       1 MiB: where a kernel goes

/** Start of the 32-bit MMIO hole when RAM does not fit below it (as QEMU's pc machine). */
export const MMIO_HOLE_START = 0xc0000000;
/** Largest low RAM without a hole: 3.5 GiB (QEMU pc keeps RAM < 0xe0000000 all below 4 GiB). */
export const LOW_RAM_MAX_NO_HOLE = 0xe0000000;
export const FOUR_GIB = 0x100000000;

/** The LAPIC and IOAPIC MMIO windows (fixed by the in-kernel irqchip). */
export const IOAPIC_ADDR = 0xfec00000;
export const LAPIC_ADDR = 0xfee00000;

/** KVM needs 3 pages for the real-mode TSS and one for the identity map, inside the hole. */
export const KVM_TSS_ADDR = 0xfffbd000;
export const KVM_IDENTITY_MAP_ADDR = 0xfffbc000;
