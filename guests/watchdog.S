; watchdog: arms the iBase IB700 watchdog with its shortest timeout (index 15, 0 s) and
; never reloads it: the VMM's watchdog action must follow. Interrupts stay off, so only
; the watchdog can end the wait; an NMI it injects shows as "unexpected exception 2"
; (lib/idt.inc), followed by an i8042 reset.
bits 32
%include "lib/pvh.inc"
%include "lib/serial.inc"
%include "lib/reset.inc"
%include "lib/idt.inc"

%define IB700_ENABLE_PORT    0x443      ; write: (re)arm with timeout index = value & 0xf
%define IB700_SHORTEST       0x0f       ; index 15 of 30, 28, ..., 2, 0 seconds

PVH_ENTRY
    call idt_init
    PRINT "watchdog: arming", 10
    mov dx, IB700_ENABLE_PORT
    mov al, IB700_SHORTEST
    out dx, al
.sleep:
    cli
    hlt
    jmp .sleep
