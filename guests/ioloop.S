; ioloop: IOLOOP_COUNT port writes to the UART scratch register, one exit each:
; a measure of the VMM's port-I/O round trip.
bits 32
%include "lib/pvh.inc"
%include "lib/serial.inc"
%include "lib/reset.inc"

%ifndef IOLOOP_COUNT
  %define IOLOOP_COUNT 100000
%endif

PVH_ENTRY
    PRINT "ioloop: start", 10
    mov dx, COM1_BASE + UART_SCR
    mov al, 0x5a
    mov ecx, IOLOOP_COUNT
.loop:                              ; keep it three instructions: CPL0 is emulated here
    out dx, al
    dec ecx
    jnz .loop
    PRINT "ioloop: done", 10
    jmp i8042_reset
