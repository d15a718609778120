; timer: PIT channel 0 at 100 Hz through the remapped 8259; counts 10 ticks in a
; sti;hlt loop, prints, resets.
bits 32
%include "lib/pvh.inc"
%include "lib/serial.inc"
%include "lib/reset.inc"
%include "lib/idt.inc"

%define PIT_CH0        0x40
%define PIT_MODE       0x43
%define PIT_HZ         1193182
%define TIMER_HZ       100
%define TICKS_WANTED   10

PVH_ENTRY
    mov dword [ticks], 0
    call idt_init
    mov ecx, IRQ_BASE + 0
    mov eax, timer_irq
    call idt_set_gate
    mov al, 0xfe                    ; master: only IRQ0
    mov ah, 0xff
    call pic_init

    mov al, 0x34                    ; channel 0, lobyte/hibyte, mode 2 (rate generator), binary
    out PIT_MODE, al
    mov ax, (PIT_HZ + TIMER_HZ / 2) / TIMER_HZ
    out PIT_CH0, al
    mov al, ah
    out PIT_CH0, al

.wait:
    sti                             ; sti;hlt: the interrupt shadow closes the wake-up race
    hlt
    cli
    cmp dword [ticks], TICKS_WANTED
    jb .wait

    PRINT "timer: "
    mov eax, TICKS_WANTED
    call print_dec
    PRINT " ticks", 10
    jmp i8042_reset

timer_irq:
    push eax
    inc dword [ticks]
    mov al, PIC_EOI
    out PIC_MASTER_CMD, al
    pop eax
    IRQ_RETURN

section .bss
alignb 4
ticks: resd 1
