/**
 * The PC's interrupt wiring as QEMU's pc machine gives it to KVM: ISA IRQs 0-15 reach the
 * 8259 pair (except the cascade, 2), and GSI n reaches IOAPIC pin n, except that the timer
 * (GSI 0) is wired to pin 2, as on real PCs and as the MP table says (IRQ0 → INTIN2).
 */
import {
  KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, type IrqRoute,
} from '../../kvm/structs.js';

export const IOAPIC_PINS = 24;

export function pcIrqRoutes(): IrqRoute[] {
  const routes: IrqRoute[] = [];
  for (let i = 0; i < 8; i++) if (i !== 2) routes.push({ gsi: i, irqchip: KVM_IRQCHIP_PIC_MASTER, pin: i });
  for (let i = 8; i < 16; i++) routes.push({ gsi: i, irqchip: KVM_IRQCHIP_PIC_SLAVE, pin: i - 8 });
  for (let i = 0; i < IOAPIC_PINS; i++) {
    if (i === 0) routes.push({ gsi: 0, irqchip: KVM_IRQCHIP_IOAPIC, pin: 2 });
    else if (i !== 2) routes.push({ gsi: i, irqchip: KVM_IRQCHIP_IOAPIC, pin: i });
  }
  return routes;
}
