; serial-irq: COM1 interrupts through the remapped 8259 (IRQ4 -> vector 0x24).
; First a THRE interrupt (IER.THRI with an empty transmitter must raise IIR=0x02), then
; received bytes are echoed from the IRQ handler until a 'q' arrives.
bits 32
%include "lib/pvh.inc"
%include "lib/serial.inc"
%include "lib/reset.inc"
%include "lib/idt.inc"

%define COM1_IRQ    4
%define QUIT_BYTE   'q'

PVH_ENTRY
    xor eax, eax
    mov [thre_seen], eax
    mov [quit_seen], eax
    call idt_init
    mov ecx, IRQ_BASE + COM1_IRQ
    mov eax, com1_irq
    call idt_set_gate
    mov al, ~(1 << COM1_IRQ) & 0xff ; master: only IRQ4
    mov ah, 0xff
    call pic_init

    mov dx, COM1_BASE + UART_IER
    mov al, 0
    out dx, al
    mov dx, COM1_BASE + UART_FCR
    out dx, al                      ; FIFOs off: IIR reads back 0x02/0x04 exactly
    mov dx, COM1_BASE + UART_MCR
    mov al, UART_MCR_DTR | UART_MCR_RTS | UART_MCR_OUT2  ; OUT2 gates the IRQ line on a PC
    out dx, al
    ; drain anything already received
.drain:
    mov dx, COM1_BASE + UART_LSR
    in al, dx
    test al, UART_LSR_DR
    jz .drained
    mov dx, COM1_BASE + UART_RX
    in al, dx
    jmp .drain
.drained:

    ; THRE: the transmitter is idle, so enabling THRI must interrupt at once.
    mov dx, COM1_BASE + UART_IER
    mov al, UART_IER_THRI
    out dx, al
    mov ecx, 1000                   ; bounded number of wake-ups
.wait_thre:
    sti
    hlt
    cli
    cmp dword [thre_seen], 0
    jne .thre_done
    dec ecx
    jnz .wait_thre
.thre_done:
    mov dx, COM1_BASE + UART_IER
    mov al, 0
    out dx, al
    cmp dword [thre_seen], 1
    je .thre_ok
    PRINT "serial-irq: thre bad, iir "
    mov eax, [thre_iir]
    call print_hex32
    PRINT 10
    jmp .rx
.thre_ok:
    PRINT "serial-irq: thre ok", 10

.rx:
    mov dx, COM1_BASE + UART_IER
    mov al, UART_IER_RDI
    out dx, al
    PRINT "serial-irq: ready", 10
.wait_rx:
    sti
    hlt
    cli
    cmp dword [quit_seen], 0
    je .wait_rx
    PRINT "serial-irq: bye", 10
    jmp i8042_reset

; IRQ4: THRE is recorded (1 = IIR was 0x02, 2 = something else) and switched off;
; received bytes are echoed, except the quit byte.
com1_irq:
    pushad
    mov dx, COM1_BASE + UART_IIR
    in al, dx                       ; reading IIR also clears a pending THRE interrupt
    cmp dword [thre_seen], 0
    jne .rx_bytes
    movzx eax, al
    mov [thre_iir], eax
    mov dword [thre_seen], 2
    cmp al, UART_IIR_THRI
    jne .thre_off
    mov dword [thre_seen], 1
.thre_off:
    mov dx, COM1_BASE + UART_IER
    mov al, 0
    out dx, al
    jmp .eoi
.rx_bytes:
    mov dx, COM1_BASE + UART_LSR
    in al, dx
    test al, UART_LSR_DR
    jz .eoi
    mov dx, COM1_BASE + UART_RX
    in al, dx
    cmp al, QUIT_BYTE
    je .quit
    call serial_putc
    jmp .rx_bytes
.quit:
    mov dword [quit_seen], 1
    jmp .rx_bytes
.eoi:
    mov al, PIC_EOI
    out PIC_MASTER_CMD, al
    popad
    IRQ_RETURN

section .bss
alignb 4
thre_seen: resd 1
thre_iir:  resd 1
quit_seen: resd 1
