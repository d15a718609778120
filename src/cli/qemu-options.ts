/**
 * The option names qemu-system-x86_64 7.2 knows, split by whether they take an argument
 * (found by running it: `qemu-system-x86_64 -version -OPT` says "requires an argument" or not).
 * nodevisor needs all of them, not only its own: an option must be checked for its argument
 * before anything runs, and a QEMU option nodevisor lacks deserves a better message than
 * "invalid option".
 */

export const QEMU_OPTIONS_WITH_ARG: ReadonlySet<string> = new Set(
  ('D L M accel acpitable action add-fd append audio audiodev bios blockdev boot cdrom chardev ' +
    'chroot compat cpu d debugcon device dfilter display drive dtb dump-vmstate echr fda fdb ' +
    'fsdev fw_cfg gdb global hda hdb hdc hdd icount incoming initrd iscsi k kernel loadvm m ' +
    'machine mem-path mon monitor msg mtdblock name net netdev nic numa object option-rom ' +
    'overcommit parallel pflash pidfile plugin qmp qmp-pretty readconfig rotate rtc runas ' +
    'sandbox sd seed serial set smbios smp spice tpmdev trace usbdevice uuid vga virtfs vnc ' +
    'watchdog-action xen-domid').split(' '),
);

export const QEMU_OPTIONS_WITHOUT_ARG: ReadonlySet<string> = new Set(
  ('preconfig S async-teardown audio-help daemonize enable-kvm enable-sync-profile full-screen ' +
    'h help mem-prealloc no-acpi no-fd-bootchk no-hpet no-reboot no-shutdown no-user-config ' +
    'nodefaults nographic only-migratable portrait s singlestep snapshot usb version win2k-hack ' +
    'xen-attach xen-domid-restrict').split(' '),
);

/** Whether QEMU knows `name` (without dashes), and if so whether it takes an argument. */
export function qemuOptionArity(name: string): 'arg' | 'flag' | undefined {
  if (QEMU_OPTIONS_WITH_ARG.has(name)) return 'arg';
  if (QEMU_OPTIONS_WITHOUT_ARG.has(name)) return 'flag';
  return undefined;
}
