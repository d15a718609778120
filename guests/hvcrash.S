; hvcrash: reports a crash through the Hyper-V crash MSRs, as Linux's hyperv_report_panic
; does. Dumps the hypervisor CPUID leaves (Hyper-V's at 0x40000000, KVM's moved to
; 0x40000100), says whether "Microsoft Hv" offers the crash MSRs, reads CRASH_CTL, writes
; P0..P4 = 1..5 and CRASH_CTL = CRASH_NOTIFY. The MSRs are accessed even when not offered,
; so that a #GP shows as "unexpected exception 13" (then an i8042 reset).
bits 32
%include "lib/pvh.inc"
%include "lib/serial.inc"
%include "lib/reset.inc"
%include "lib/idt.inc"

%define HV_CPUID_VENDOR          0x40000000
%define HV_CPUID_FEATURES        0x40000003
%define HV_CPUID_LAST            0x40000005
%define KVM_CPUID_MOVED          0x40000100
%define HV_CRASH_MSR_AVAILABLE   (1 << 10)      ; 0x40000003 EDX
%define HV_X64_MSR_CRASH_P0      0x40000100
%define HV_X64_MSR_CRASH_CTL     0x40000105
%define HV_CRASH_CTL_NOTIFY_HI   0x80000000     ; bit 63, in EDX

PVH_ENTRY
    call idt_init

    mov esi, HV_CPUID_VENDOR
.hv_leaves:
    mov eax, esi
    call dump_leaf
    inc esi
    cmp esi, HV_CPUID_LAST
    jbe .hv_leaves
    mov eax, KVM_CPUID_MOVED
    call dump_leaf
    mov eax, KVM_CPUID_MOVED + 1
    call dump_leaf

    mov eax, HV_CPUID_VENDOR
    xor ecx, ecx
    cpuid
    mov [vendor], ebx
    mov [vendor + 4], ecx
    mov [vendor + 8], edx
    mov byte [vendor + 12], 0
    PRINT "hvcrash: vendor "
    mov esi, vendor
    call serial_puts
    PRINT 10
    cmp ebx, 'Micr'
    jne .no_crash_msrs
    cmp ecx, 'osof'
    jne .no_crash_msrs
    cmp edx, 't Hv'
    jne .no_crash_msrs
    mov eax, HV_CPUID_FEATURES
    xor ecx, ecx
    cpuid
    test edx, HV_CRASH_MSR_AVAILABLE
    jz .no_crash_msrs
    PRINT "hvcrash: crash msrs offered", 10
    jmp .use_msrs
.no_crash_msrs:
    PRINT "hvcrash: crash msrs not offered", 10

.use_msrs:
    mov ecx, HV_X64_MSR_CRASH_CTL
    rdmsr
    PRINT "hvcrash: crash_ctl "
    call print_hex64
    PRINT 10

    mov ecx, HV_X64_MSR_CRASH_P0
    mov ebx, 1
.params:
    mov eax, ebx
    xor edx, edx
    wrmsr
    inc ecx
    inc ebx
    cmp ecx, HV_X64_MSR_CRASH_P0 + 5
    jb .params
    PRINT "hvcrash: params written", 10

    mov ecx, HV_X64_MSR_CRASH_CTL
    xor eax, eax
    mov edx, HV_CRASH_CTL_NOTIFY_HI
    wrmsr
    PRINT "hvcrash: running after crash notify", 10
.sleep:
    cli
    hlt
    jmp .sleep

; dump_leaf: EAX = leaf (subleaf 0). Prints "hvcrash: cpuid <leaf> <eax> <ebx> <ecx> <edx>".
dump_leaf:
    pushad
    mov edi, eax
    xor ecx, ecx
    cpuid
    push edx
    push ecx
    push ebx
    push eax
    PRINT "hvcrash: cpuid "
    mov eax, edi
    call print_hex32
    mov ecx, 4
.reg:
    PRINT " "
    pop eax
    call print_hex32
    dec ecx
    jnz .reg
    PRINT 10
    popad
    ret

section .bss
vendor: resb 16
