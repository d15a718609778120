; msr-write: writes IA32_SYSENTER_CS (0x174) in a loop and prints what it reads back:
; `msr-write: wrote <8 hex> read <8 hex>` per iteration, writing 1, 2, 3, ... (low 32 bits;
; the high half is 0). Never ends.
bits 32
%include "lib/pvh.inc"
%include "lib/serial.inc"
%include "lib/reset.inc"
%include "lib/idt.inc"

%define IA32_SYSENTER_CS 0x174

PVH_ENTRY
    call idt_init
    xor esi, esi
.loop:
    inc esi
    mov ecx, IA32_SYSENTER_CS
    mov eax, esi
    xor edx, edx
    wrmsr
    rdmsr
    mov edi, eax
    PRINT "msr-write: wrote "
    mov eax, esi
    call print_hex32
    PRINT " read "
    mov eax, edi
    call print_hex32
    PRINT 10
    mov ecx, 20000
.delay:
    dec ecx
    jnz .delay
    jmp .loop
