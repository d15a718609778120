; triplefault: an IDT with limit 0 makes int3 fault, the #GP fault again and the
; #DF a triple fault (a shutdown). On PVM the CPL0 emulator stops first (see README).
bits 32
%include "lib/pvh.inc"
%include "lib/serial.inc"

PVH_ENTRY
    PRINT "triplefault: now", 10
    lidt [empty_idtr]
    int3
.stuck:
    cli
    hlt
    jmp .stuck

section .rodata
align 4
empty_idtr:
    dw 0
    dd 0
