/**
 * Guest RAM: anonymous shared mappings, one per KVM memory slot. Shared so that every thread
 * of the process sees the same bytes; not dumped in core files (guest memory is the guest's).
 */
import { NodevisorError } from '../errors.js';
import { errnoName } from '../kvm/errno.js';
import {
  addressOf, errno, madvise, MADV_DONTDUMP, MAP_ANONYMOUS, MAP_SHARED, mmap, munmap, PROT_READ,
  PROT_WRITE, viewAt, type Pointer,
} from '../kvm/libc.js';
import { GuestMemory, type RamRegion } from './guest-memory.js';

export class RamMapping {
  private readonly maps: Array<{ ptr: Pointer; size: number }> = [];
  readonly memory: GuestMemory;

  /** Maps `slots` (gpa, size) pairs. Throws ERR_BAD_MEMORY_SIZE when the host refuses. */
  constructor(slots: ReadonlyArray<{ gpa: number; size: number }>) {
    const regions: RamRegion[] = [];
    try {
      for (const s of slots) {
        const ptr = mmap(s.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1);
        if (!ptr) {
          throw new NodevisorError('ERR_BAD_MEMORY_SIZE',
            `cannot set up guest memory 'pc.ram': ${errnoName(errno())} (${s.size} bytes)`);
        }
        this.maps.push({ ptr, size: s.size });
        madvise(ptr, s.size, MADV_DONTDUMP);
        const hostAddress = addressOf(ptr);
        regions.push({ gpa: s.gpa, size: s.size, hostAddress, bytes: new Uint8Array(viewAt(hostAddress, s.size)) });
      }
    } catch (e) {
      this.unmap();
      throw e;
    }
    this.memory = new GuestMemory(regions);
  }

  /** Releases the mappings. Views of them must not be used afterwards. */
  unmap(): void {
    for (const m of this.maps.splice(0)) munmap(m.ptr, m.size);
  }
}
