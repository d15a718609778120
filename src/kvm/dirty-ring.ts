/**
 * A vCPU's dirty ring (KVM_CAP_DIRTY_LOG_RING): KVM publishes the guest pages the vCPU wrote
 * as kvm_dirty_gfn entries {u32 flags, u32 slot, u64 offset} in a ring mapped from the vCPU
 * fd. Harvesting marks each published entry collected; KVM_RESET_DIRTY_RINGS then lets KVM
 * reuse them. Nothing consumes the pages yet (snapshots and migration will); a full ring is
 * harvested so the vCPU can run on.
 */
import { KvmError } from './kvm-error.js';
import { errno, mmap, MAP_SHARED, PROT_READ, PROT_WRITE, viewAt, addressOf } from './libc.js';

/** x86's KVM_DIRTY_LOG_PAGE_OFFSET: the ring's page offset in the vCPU fd's mapping. */
const KVM_DIRTY_LOG_PAGE_OFFSET = 64;
const PAGE_SIZE = 4096;
export const KVM_DIRTY_GFN_SIZE = 16;
const KVM_DIRTY_GFN_F_DIRTY = 1;
const KVM_DIRTY_GFN_F_RESET = 2;

export class DirtyRing {
  private readonly view: DataView;
  private fetchIndex = 0;
  /** Pages harvested since the ring was made. */
  harvested = 0;

  constructor(vcpuFd: number, private readonly entries: number) {
    const bytes = entries * KVM_DIRTY_GFN_SIZE;
    const p = mmap(bytes, PROT_READ | PROT_WRITE, MAP_SHARED, vcpuFd, KVM_DIRTY_LOG_PAGE_OFFSET * PAGE_SIZE);
    if (!p) throw new KvmError('mmap(dirty ring)', errno());
    this.view = new DataView(viewAt(addressOf(p), bytes));
  }

  /** Collects every published entry; returns how many. The caller then resets the rings. */
  harvest(): number {
    let n = 0;
    for (;;) {
      const at = (this.fetchIndex % this.entries) * KVM_DIRTY_GFN_SIZE;
      const flags = Atomics.load(new Uint32Array(this.view.buffer, at, 1), 0);
      if ((flags & KVM_DIRTY_GFN_F_DIRTY) === 0) break;
      Atomics.store(new Uint32Array(this.view.buffer, at, 1), 0, KVM_DIRTY_GFN_F_RESET);
      this.fetchIndex++;
      n++;
    }
    this.harvested += n;
    return n;
  }
}
