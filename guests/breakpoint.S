; breakpoint: calls a function in a loop, for introspection breakpoints and single-stepping.
; Prints `breakpoint: target <8 hex>` (the function's address, where a tool puts its INT3),
; `breakpoint: counter <8 hex>` (the address of the call counter the function increments,
; alone in its 4 KiB page, for write-protection tests), then `breakpoint: call <n>` after each call (n counts completed calls, from 1), with a short
; delay between calls. Its own #BP handler prints `breakpoint: #BP at <8 hex>` (the return
; address the CPU pushed: just past the INT3) and returns. Never ends.
bits 32
%include "lib/pvh.inc"
%include "lib/serial.inc"
%include "lib/reset.inc"
%include "lib/idt.inc"

PVH_ENTRY
    call idt_init
    mov ecx, 3
    mov eax, bp_handler
    call idt_set_gate
    PRINT "breakpoint: target "
    mov eax, bp_target
    call print_hex32
    PRINT 10
    PRINT "breakpoint: counter "
    mov eax, calls
    call print_hex32
    PRINT 10
.loop:
    call bp_target
    PRINT "breakpoint: call "
    mov eax, [calls]
    call print_dec
    PRINT 10
    mov ecx, 20000
.delay:
    dec ecx
    jnz .delay
    jmp .loop

    align 16
; bp_target: one byte of NOP for the tool's INT3, then the work.
bp_target:
    nop
    inc dword [calls]
    ret

; #BP: an interrupt gate (no error code): [esp] = EIP, [esp + 4] = CS, [esp + 8] = EFLAGS.
bp_handler:
    push eax
    PRINT "breakpoint: #BP at "
    mov eax, [esp + 4]
    call print_hex32
    PRINT 10
    pop eax
    IRQ_RETURN

section .bss
    alignb 4096
calls: resd 1
    resb 4096 - 4                   ; nothing else in the counter's page
