; smp: finds the CPUs in the MP table, starts every AP with INIT-SIPI-SIPI through a
; real-mode trampoline at 0x10000, and has each CPU print its APIC id.
bits 32
%include "lib/pvh.inc"
%include "lib/serial.inc"
%include "lib/reset.inc"

%define BIOS_EBDA_SEGMENT   0x40e
%define MPF_SIGNATURE       0x5f504d5f      ; "_MP_"
%define MPC_SIGNATURE       0x504d4350      ; "PCMP"
%define MPF_PHYSPTR         4
%define MPC_LENGTH          4
%define MPC_OEMCOUNT        0x22
%define MPC_LAPIC           0x24
%define MPC_HEADER_SIZE     0x2c
%define MP_PROCESSOR        0
%define MP_PROCESSOR_SIZE   20
%define MP_OTHER_SIZE       8
%define MPC_APICID          1
%define MPC_CPUFLAG         3
%define CPU_ENABLED         1

%define APIC_DEFAULT_BASE   0xfee00000
%define APIC_SPIV           0xf0
%define APIC_ICR            0x300
%define APIC_ICR2           0x310
%define APIC_ICR_BUSY       0x1000
%define APIC_DM_INIT_ASSERT 0x4500          ; INIT, level assert
%define APIC_DM_STARTUP     0x4600          ; start-up IPI, level assert

%define TRAMPOLINE_BASE     0x10000         ; SIPI vector 0x10
%define MAX_CPUS            32
%define AP_STACK_SIZE       1024
; AP wait bound: TSC high dword advancing by this much (about 2^34 cycles, seconds).
%define AP_WAIT_TSC_HI      4

PVH_ENTRY
    mov dword [print_lock], 0
    mov dword [cpus_up], 0
    mov dword [next_stack], 0
    mov dword [cpu_count], 0
    mov dword [lapic_base], APIC_DEFAULT_BASE

    call find_mp_table
    test esi, esi
    jz .no_table
    call parse_mp_table
.no_table:
    PRINT "smp: "
    mov eax, [cpu_count]
    call print_dec
    PRINT " cpus in MP table", 10

    ; The BSP is one of the cpus: count and print it like the others.
    call print_apic_id
    lock inc dword [cpus_up]

    ; Software-enable the local APIC (spurious vector 0xff).
    mov edi, [lapic_base]
    mov dword [edi + APIC_SPIV], 0x1ff

    ; Copy the trampoline below 1 MiB.
    mov esi, ap_trampoline
    mov edi, TRAMPOLINE_BASE
    mov ecx, ap_trampoline_end - ap_trampoline
    rep movsb

    ; Start the APs one at a time so the output order is fixed.
    call bsp_apic_id
    mov ebx, eax                    ; BSP APIC id
    xor ebp, ebp                    ; index into apic_ids
.next_cpu:
    cmp ebp, [cpu_count]
    jae .all_started
    movzx eax, byte [apic_ids + ebp]
    inc ebp
    cmp eax, ebx
    je .next_cpu
    mov edx, [cpus_up]
    inc edx                         ; count we wait for
    call start_ap
    call wait_cpus_up
    jmp .next_cpu

.all_started:
    mov eax, [cpus_up]
    cmp eax, [cpu_count]
    jne .missing
    PRINT "smp: all "
    mov eax, [cpu_count]
    call print_dec
    PRINT " cpus up", 10
    jmp i8042_reset
.missing:
    PRINT "smp: only "
    mov eax, [cpus_up]
    call print_dec
    PRINT " of "
    mov eax, [cpu_count]
    call print_dec
    PRINT " cpus up", 10
    jmp i8042_reset

; wait_cpus_up: waits until cpus_up >= EDX or the TSC bound passes.
wait_cpus_up:
    push ebx
    push ecx
    push edx
    mov ecx, edx
    rdtsc
    mov ebx, edx                    ; start, high dword
.poll:
    cmp [cpus_up], ecx
    jae .done
    pause
    rdtsc
    sub edx, ebx
    cmp edx, AP_WAIT_TSC_HI
    jb .poll
.done:
    pop edx
    pop ecx
    pop ebx
    ret

; start_ap: EAX = APIC id. INIT, then two start-up IPIs (the MP spec sequence).
start_ap:
    push edi
    push ecx
    mov edi, [lapic_base]
    shl eax, 24
    mov [edi + APIC_ICR2], eax
    mov dword [edi + APIC_ICR], APIC_DM_INIT_ASSERT
    call wait_icr_idle
    mov ecx, 10000                  ; settle time (the spec asks 10 ms; emulated CPL0 is slow)
    call delay
    mov [edi + APIC_ICR2], eax
    mov dword [edi + APIC_ICR], APIC_DM_STARTUP | (TRAMPOLINE_BASE >> 12)
    call wait_icr_idle
    mov ecx, 200
    call delay
    mov [edi + APIC_ICR2], eax
    mov dword [edi + APIC_ICR], APIC_DM_STARTUP | (TRAMPOLINE_BASE >> 12)
    call wait_icr_idle
    pop ecx
    pop edi
    ret

wait_icr_idle:
    test dword [edi + APIC_ICR], APIC_ICR_BUSY
    jz .idle
    pause
    jmp wait_icr_idle
.idle:
    ret

delay:                              ; ECX iterations
    dec ecx
    jnz delay
    ret

; bsp_apic_id / print_apic_id: APIC id from CPUID leaf 1 EBX[31:24].
bsp_apic_id:
    push ebx
    push ecx
    push edx
    mov eax, 1
    cpuid
    mov eax, ebx
    shr eax, 24
    pop edx
    pop ecx
    pop ebx
    ret

print_apic_id:
    call bsp_apic_id
    push eax
    call lock_print
    PRINT "cpu: apic id "
    pop eax
    call print_dec
    PRINT 10
    jmp unlock_print

lock_print:
    push eax
.retry:
    mov eax, 1
    xchg eax, [print_lock]
    test eax, eax
    jz .taken
    pause
    jmp .retry
.taken:
    pop eax
    ret

unlock_print:
    mov dword [print_lock], 0
    ret

; find_mp_table: ESI = MP floating pointer structure, or 0.
find_mp_table:
    movzx esi, word [BIOS_EBDA_SEGMENT]
    shl esi, 4
    jz .bios_area
    lea ecx, [esi + 1024]
    call scan_mpf
    test esi, esi
    jnz .found
.bios_area:
    mov esi, 0xf0000
    mov ecx, 0x100000
    call scan_mpf
.found:
    ret

; scan_mpf: scans [ESI, ECX) on 16-byte boundaries for "_MP_" with a valid checksum.
scan_mpf:
.next:
    cmp esi, ecx
    jae .none
    cmp dword [esi], MPF_SIGNATURE
    jne .skip
    xor eax, eax
    xor edx, edx
.sum:
    add al, [esi + edx]
    inc edx
    cmp edx, 16
    jb .sum
    test al, al
    jz .ok
.skip:
    add esi, 16
    jmp .next
.none:
    xor esi, esi
.ok:
    ret

; parse_mp_table: ESI = floating pointer. Fills apic_ids/cpu_count with enabled processors.
parse_mp_table:
    mov esi, [esi + MPF_PHYSPTR]
    test esi, esi
    jz .done                        ; a default configuration: no table to read
    cmp dword [esi], MPC_SIGNATURE
    jne .done
    mov eax, [esi + MPC_LAPIC]
    test eax, eax
    jz .keep_lapic
    mov [lapic_base], eax
.keep_lapic:
    movzx ecx, word [esi + MPC_OEMCOUNT]
    movzx edx, word [esi + MPC_LENGTH]
    add edx, esi                    ; end of table
    add esi, MPC_HEADER_SIZE
.entry:
    test ecx, ecx
    jz .done
    cmp esi, edx
    jae .done
    dec ecx
    mov al, [esi]
    cmp al, MP_PROCESSOR
    jne .other
    test byte [esi + MPC_CPUFLAG], CPU_ENABLED
    jz .next_processor
    mov eax, [cpu_count]
    cmp eax, MAX_CPUS
    jae .next_processor
    mov bl, [esi + MPC_APICID]
    mov [apic_ids + eax], bl
    inc dword [cpu_count]
.next_processor:
    add esi, MP_PROCESSOR_SIZE
    jmp .entry
.other:
    cmp al, 4
    ja .done                        ; unknown entry type: its size is unknown too
    add esi, MP_OTHER_SIZE
    jmp .entry
.done:
    ret

; AP path, 32-bit: own stack, print, count in, sleep.
ap_entry32:
    mov ax, DATA_SEL
    mov ds, ax
    mov es, ax
    mov fs, ax
    mov gs, ax
    mov ss, ax
    mov eax, 1
    lock xadd [next_stack], eax
    inc eax
    imul eax, eax, AP_STACK_SIZE
    lea esp, [ap_stacks + eax]
    call print_apic_id
    lock inc dword [cpus_up]
.sleep:
    cli
    hlt
    jmp .sleep

; Real-mode trampoline, copied to TRAMPOLINE_BASE; CS = 0x1000, IP = 0 after the SIPI.
; Offsets inside it are taken relative to ap_trampoline.
bits 16
ap_trampoline:
    cli
    cld
    mov ax, cs
    mov ds, ax
    o32 lgdt [ap_trampoline_gdtr - ap_trampoline]
    mov eax, cr0
    or al, 1                        ; CR0.PE
    mov cr0, eax
    jmp dword CODE_SEL:ap_entry32
align 4
ap_trampoline_gdtr:
    dw flat_gdt_end - flat_gdt - 1
    dd flat_gdt
ap_trampoline_end:
bits 32

section .bss
alignb 4
print_lock: resd 1
cpus_up:    resd 1
next_stack: resd 1
cpu_count:  resd 1
lapic_base: resd 1
apic_ids:   resb MAX_CPUS
alignb 16
ap_stacks:  resb AP_STACK_SIZE * (MAX_CPUS + 1)
