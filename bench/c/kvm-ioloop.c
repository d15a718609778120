/*
 * kvm-ioloop: the reference for nodevisor's port-I/O benchmark. A minimal VMM in C that
 * boots a PVH ELF32 test guest (guests/ioloop.S) and runs KVM_RUN in a tight loop.
 *
 *   kvm-ioloop GUEST.elf [MEM_MIB]
 *
 * Guest serial output (COM1 THR writes) goes to stderr. The last stdout line is
 *   RESULT scratch_exits=N io_exits=N setup_ns=N run_ns=N loop_ns=N
 * run_ns: first KVM_RUN to the i8042 reset; loop_ns: from the first I/O exit after
 * "ioloop: start\n" was printed to the first byte of the next line ("ioloop: done").
 * Built and run by bench/run.ts; not part of nodevisor.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define START_INFO 0x6000u
#define BOOT_GDT 0x500u
#define XEN_ELFNOTE_PHYS32_ENTRY 18

static void die(const char *what) {
  perror(what);
  exit(2);
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Loads PT_LOADs into RAM; returns the PVH entry from the Xen note (or e_entry). */
static uint32_t load_pvh_elf(const char *path, uint8_t *ram, size_t ram_size) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) die(path);
  struct stat st;
  if (fstat(fd, &st) < 0) die("fstat");
  uint8_t *img = malloc((size_t)st.st_size);
  if (!img || read(fd, img, (size_t)st.st_size) != st.st_size) die("read");
  close(fd);
  Elf32_Ehdr *eh = (Elf32_Ehdr *)img;
  if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS32) {
    fprintf(stderr, "%s: not an ELF32 image\n", path);
    exit(2);
  }
  uint32_t entry = eh->e_entry;
  for (int i = 0; i < eh->e_phnum; i++) {
    Elf32_Phdr *ph = (Elf32_Phdr *)(img + eh->e_phoff + (size_t)i * eh->e_phentsize);
    if (ph->p_type == PT_LOAD) {
      if ((uint64_t)ph->p_paddr + ph->p_memsz > ram_size) {
        fprintf(stderr, "segment outside RAM\n");
        exit(2);
      }
      memcpy(ram + ph->p_paddr, img + ph->p_offset, ph->p_filesz);
      memset(ram + ph->p_paddr + ph->p_filesz, 0, ph->p_memsz - ph->p_filesz);
    } else if (ph->p_type == PT_NOTE) {
      uint32_t off = 0;
      while (off + 12 <= ph->p_filesz) {
        uint32_t *n = (uint32_t *)(img + ph->p_offset + off);
        uint32_t namesz = n[0], descsz = n[1], type = n[2];
        const char *name = (const char *)(n + 3);
        uint32_t desc = off + 12 + ((namesz + 3) & ~3u);
        if (type == XEN_ELFNOTE_PHYS32_ENTRY && namesz == 4 && memcmp(name, "Xen", 4) == 0)
          entry = *(uint32_t *)(img + ph->p_offset + desc);
        off = desc + ((descsz + 3) & ~3u);
      }
    }
  }
  free(img);
  return entry;
}

static void flat_segment(struct kvm_segment *s, uint16_t sel, uint8_t type) {
  memset(s, 0, sizeof *s);
  s->base = 0;
  s->limit = 0xffffffff;
  s->selector = sel;
  s->type = type;
  s->present = 1;
  s->db = 1;
  s->s = 1;
  s->g = 1;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s GUEST.elf [MEM_MIB]\n", argv[0]);
    return 2;
  }
  size_t ram_size = (size_t)(argc > 2 ? atoi(argv[2]) : 64) << 20;
  int64_t t_setup = now_ns();

  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) die("/dev/kvm");
  int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  if (vm < 0) die("KVM_CREATE_VM");
  if (ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000UL) < 0) die("KVM_SET_TSS_ADDR");
  uint64_t idmap = 0xfeffc000;
  if (ioctl(vm, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0) die("KVM_SET_IDENTITY_MAP_ADDR");
  if (ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0) die("KVM_CREATE_IRQCHIP");

  uint8_t *ram = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (ram == MAP_FAILED) die("mmap ram");
  struct kvm_userspace_memory_region region = {
    .slot = 0, .guest_phys_addr = 0, .memory_size = ram_size, .userspace_addr = (uint64_t)(uintptr_t)ram,
  };
  if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) die("KVM_SET_USER_MEMORY_REGION");

  uint32_t entry = load_pvh_elf(argv[1], ram, ram_size);
  *(uint32_t *)(ram + START_INFO) = 0x336ec578; /* hvm_start_info.magic; the rest stays zero */
  /* Boot GDT as nodevisor's: null, TSS (0x08), 32-bit code (0x10), data (0x18). */
  uint64_t *gdt = (uint64_t *)(ram + BOOT_GDT);
  gdt[0] = 0;
  gdt[1] = 0x00008b0000000067ULL;
  gdt[2] = 0x00cf9b000000ffffULL;
  gdt[3] = 0x00cf93000000ffffULL;

  int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
  if (vcpu < 0) die("KVM_CREATE_VCPU");
  int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (run_size < 0) die("KVM_GET_VCPU_MMAP_SIZE");
  struct kvm_run *run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
  if (run == MAP_FAILED) die("mmap kvm_run");

  int nent = 256;
  struct kvm_cpuid2 *cpuid = calloc(1, sizeof *cpuid + (size_t)nent * sizeof(struct kvm_cpuid_entry2));
  cpuid->nent = (uint32_t)nent;
  if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, cpuid) < 0) die("KVM_GET_SUPPORTED_CPUID");
  if (ioctl(vcpu, KVM_SET_CPUID2, cpuid) < 0) die("KVM_SET_CPUID2");

  struct kvm_sregs sregs;
  if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) die("KVM_GET_SREGS");
  flat_segment(&sregs.cs, 0x10, 0xb);
  flat_segment(&sregs.ds, 0x18, 0x3);
  sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
  memset(&sregs.tr, 0, sizeof sregs.tr);
  sregs.tr.selector = 0x08;
  sregs.tr.limit = 0x67;
  sregs.tr.type = 0xb;
  sregs.tr.present = 1;
  sregs.gdt.base = BOOT_GDT;
  sregs.gdt.limit = 4 * 8 - 1;
  sregs.idt.base = BOOT_GDT + 0x20;
  sregs.idt.limit = 0;
  sregs.cr0 = 0x11; /* PE | ET */
  sregs.cr3 = 0;
  sregs.cr4 = 0;
  sregs.efer = 0;
  if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) die("KVM_SET_SREGS");
  struct kvm_regs regs;
  memset(&regs, 0, sizeof regs);
  regs.rip = entry;
  regs.rbx = START_INFO;
  regs.rflags = 2;
  if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0) die("KVM_SET_REGS");

  char line[256];
  size_t line_len = 0;
  int after_start = 0;        /* "ioloop: start\n" has been printed */
  int64_t t_loop0 = 0, t_loop1 = 0;
  long scratch = 0, io_exits = 0;
  int64_t t_run0 = now_ns();
  for (;;) {
    if (ioctl(vcpu, KVM_RUN, 0) < 0) {
      if (errno == EINTR) continue;
      die("KVM_RUN");
    }
    if (run->exit_reason != KVM_EXIT_IO) {
      fprintf(stderr, "kvm-ioloop: unexpected exit reason %u\n", run->exit_reason);
      return 3;
    }
    io_exits++;
    uint8_t *data = (uint8_t *)run + run->io.data_offset;
    uint16_t port = run->io.port;
    if (after_start == 1 && t_loop0 == 0) t_loop0 = now_ns();
    if (run->io.direction == KVM_EXIT_IO_OUT) {
      if (port == 0x3ff) {
        scratch++;
      } else if (port == 0x3f8) {
        if (after_start == 1 && t_loop1 == 0 && t_loop0 != 0) t_loop1 = now_ns();
        char c = (char)data[0];
        fputc(c, stderr);
        if (line_len < sizeof line - 1) line[line_len++] = c;
        if (c == '\n') {
          line[line_len] = 0;
          if (strcmp(line, "ioloop: start\n") == 0) after_start = 1;
          line_len = 0;
        }
      } else if (port == 0x64 && data[0] == 0xfe) {
        break;
      }
    } else {
      memset(data, port == 0x3fd ? 0x60 : 0xff, (size_t)run->io.size * run->io.count);
    }
  }
  int64_t t_end = now_ns();
  printf("RESULT scratch_exits=%ld io_exits=%ld setup_ns=%lld run_ns=%lld loop_ns=%lld\n", scratch, io_exits,
         (long long)(t_run0 - t_setup), (long long)(t_end - t_run0),
         (long long)(t_loop1 != 0 ? t_loop1 - t_loop0 : -1));
  return 0;
}
