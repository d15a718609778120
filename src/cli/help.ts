/**
 * What `-h` and `-version` print. Laid out like QEMU's help, but listing only what nodevisor
 * implements: an option shown here works as QEMU's does.
 */

export const PROGRAM_NAME = 'nodevisor';
export const QEMU_COMPAT_VERSION = '7.2';

export function versionText(version: string): string {
  return `${PROGRAM_NAME} version ${version} (QEMU-compatible command line, ${QEMU_COMPAT_VERSION})\n`;
}

export function helpText(version: string): string {
  return `${versionText(version)}usage: ${PROGRAM_NAME} [options]

A KVM virtual machine monitor that boots a Linux kernel directly (no firmware, no disks).
Options follow qemu-system-x86_64 ${QEMU_COMPAT_VERSION}; an option of QEMU's that is not listed
here is refused.

Standard options:
-h or -help     display this help and exit
-version        display version information and exit
-machine [type=]name[,prop[=value][,...]]
                selects emulated machine ('-machine help' for list)
                only 'pc' exists (the default)
                property accel=kvm selects the accelerator
                kernel-irqchip=on|off|split sets the accelerator's kernel-irqchip
-M              same as -machine
-cpu cpu[,+feature|-feature|feature=on|off][,...]
                select CPU ('-cpu help' for list): 'host' (default) or 'max'
                hv-crash[=on|off] gives the guest Hyper-V's crash MSRs to report a panic
-accel [accel=]kvm[,prop[=value][,...]]
                select accelerator: only kvm ('-accel help' for list,
                '-accel kvm,help' for its properties and this host's capabilities)
                kernel-irqchip=on|off|split where the interrupt controllers are (default=on)
                dirty-ring-size=n (entries in each vCPU's dirty ring, a power of two; default 0)
                notify-vmexit=run|internal-error|disable,notify-window=n (what a notify VM exit
                does, and the cycles without an interrupt window that cause one)
                introspection=id (the -object introspection that inspects the guest)
-enable-kvm     same as -machine accel=kvm
-smp [[cpus=]n][,maxcpus=maxcpus][,sockets=sockets][,dies=dies][,cores=cores][,threads=threads]
                set the number of CPUs to 'n' [default=1]; at most 255
                maxcpus= size of the CPU topology (only n CPUs are started)
                sockets=, dies=, cores=, threads= the CPU topology
-m [size=]megs  guest RAM size [default=128M]; a number without a suffix is MiB,
                suffixes k, M, G, T, P, E are powers of 1024 (as in 2G or 1.5G)
-name [guest=]name[,process=name][,debug-threads=on|off]
                name of the guest
-device driver[,prop[=value][,...]]
                add device: pvpanic[,ioport=port] (default port 0x505) or ib700
                ('-device help' lists the drivers, '-device driver,help' a driver's properties)
-uuid %08x-%04x-%04x-%04x-%012x
                specify machine UUID

Display options:
-display none   no display (the only display nodevisor has)
-nographic      no graphical output: the serial port uses this terminal,
                multiplexed with the ctrl-a escapes (ctrl-c goes to the guest)

Linux/Multiboot boot specific:
-kernel image   boot this kernel: bzImage, PVH ELF or ELF vmlinux (required)
-append cmdline use 'cmdline' as kernel command line
-initrd file    use 'file' as initial ram disk

Character device options:
-serial dev     connect COM1 to character device 'dev':
                stdio, mon:stdio (with the ctrl-a escapes), file:path, null, none,
                unix:path[,server=on|off][,wait=on|off]
                default: stdio (mon:stdio with -nographic; none with -qmp stdio)
-chardev socket,id=id,path=path[,server=on|off][,wait=on|off][,reconnect=seconds]
-chardev socket,id=id[,host=host],port=port[,server=on|off][,wait=on|off][,reconnect=seconds]
                a socket: a server (server=on,wait=off) for -mon, or a client
                (server=off) for -object introspection; one that nothing uses is
                accepted and left closed
-mon [chardev=]name[,mode=control][,pretty=on|off]
                QMP on chardev 'name', which must be server=on,wait=off
                (the human monitor, mode=readline, is not supported)
-qmp dev        QMP on 'dev': unix:path,server=on,wait=off,
                tcp:[host]:port,server=on,wait=off, stdio, or chardev:name

Debug/Expert options:
-S              start with the CPUs stopped (status prelaunch) until QMP 'cont'
-no-reboot      exit instead of rebooting (same as -action reboot=shutdown)
-no-shutdown    stop before shutdown (same as -action shutdown=pause)
-action reboot=reset|shutdown
                action when guest reboots [default=reset]
-action shutdown=poweroff|pause
                action when guest shuts down [default=poweroff]
-action panic=pause|shutdown|exit-failure|none
                action when guest panics [default=shutdown]
-action watchdog=reset|shutdown|poweroff|inject-nmi|pause|debug|none
                action when watchdog fires [default=reset]
-watchdog-action reset|shutdown|poweroff|inject-nmi|pause|debug|none
                same as -action watchdog=...

Generic object creation:
-object secret,id=id,data=string|file=path[,format=raw|base64]
                a secret, such as the key of an introspection tool
-object introspection,id=id,chardev=id[,key=secret-id][,handshake-timeout=seconds]
        [,unhook-timeout=seconds][,dialect=v7|rfc-v5]
                the introspection tool nodevisor connects to through the chardev
                (a -chardev socket,path=...,server=off); -accel kvm,introspection=id
                puts it to work
                ('-object help' lists the types, '-object type,help' a type's properties)

When using -nographic, press 'ctrl-a h' to get some help.
`;
}

/** `-accel help`. */
export function accelHelpText(): string {
  return `Accelerators supported in ${PROGRAM_NAME}:\nkvm\n`;
}

/** `-machine help`. */
export function machineHelpText(): string {
  return 'Supported machines are:\npc                   x86 PC with legacy devices, direct kernel boot (default)\n';
}

/** `-display help`. */
export function displayHelpText(): string {
  return 'Available display backend types:\nnone\n';
}
