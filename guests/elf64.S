; elf64: a vmlinux-style ELF64 (no PVH note) entered in 64-bit long mode at e_entry
; through the 64-bit boot protocol (identity paging, RSI = boot_params).
; Prints the command line and e820 table from boot_params, then resets.
bits 64
%include "lib/serial.inc"
%include "lib/reset.inc"
%include "lib/bootparams.inc"

section .bss
alignb 16
stack:
    resb 8192
stack_top:

section .text.entry
global _start
_start:
    cli
    cld
    mov rsp, stack_top
    mov rbx, rsi
    PRINT "elf64: cmdline="
    call print_boot_params
    jmp i8042_reset
