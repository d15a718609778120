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
#include "kvm-common.h"

#include <elf.h>
#include <sys/stat.h>

#define START_INFO 0x6000u
#define XEN_ELFNOTE_PHYS32_ENTRY 18

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

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s GUEST.elf [MEM_MIB]\n", argv[0]);
    return 2;
  }
  size_t ram_size = (size_t)(argc > 2 ? atoi(argv[2]) : 64) << 20;
  int64_t t_setup = now_ns();

  struct vm v;
  vm_create(&v, ram_size);
  uint32_t entry = load_pvh_elf(argv[1], v.ram, ram_size);
  *(uint32_t *)(v.ram + START_INFO) = 0x336ec578; /* hvm_start_info.magic; the rest stays zero */
  vcpu_flat32(&v, entry, START_INFO);
  int vcpu = v.vcpu;
  struct kvm_run *run = v.run;

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
