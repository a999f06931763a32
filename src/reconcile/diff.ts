// The minimal ordered set of kernel operations that turns `actual` into `desired`, touching only what we
// own. SET in place wherever IPVS allows it (scheduler, flags, persistence, weight, forwarding), because a
// delete-and-add would drop the connections of that service or destination.
import type { DesiredVirtualService } from '../model/types.js';
import type { KernelDestination, KernelService, Operation } from './types.js';

export function toKernelService(v: DesiredVirtualService): KernelService {
  return {
    key: v.key,
    family: v.family,
    protocol: v.protocol,
    address: v.vip,
    port: v.port,
    scheduler: v.scheduler,
    schedulerFlags: [...v.schedulerFlags].sort(),
    persistenceTimeoutSeconds: v.persistenceTimeoutSeconds,
    destinations: v.realServers.map((r) => ({ address: r.address, port: r.port, weight: r.weight, forwarding: v.forwarding })),
  };
}

const destKey = (d: KernelDestination) => (d.address.includes(':') ? `[${d.address}]:${d.port}` : `${d.address}:${d.port}`);

function serviceChanges(want: KernelService, have: KernelService): string[] {
  const changed: string[] = [];
  if (want.scheduler !== have.scheduler) changed.push('scheduler');
  if ([...want.schedulerFlags].sort().join(',') !== [...have.schedulerFlags].sort().join(',')) changed.push('schedulerFlags');
  if (want.persistenceTimeoutSeconds !== have.persistenceTimeoutSeconds) changed.push('persistence');
  return changed;
}

function destinationChanges(want: KernelDestination, have: KernelDestination): string[] {
  const changed: string[] = [];
  if (want.weight !== have.weight) changed.push('weight');
  if (want.forwarding !== have.forwarding) changed.push('forwarding');
  return changed;
}

export interface DiffInput {
  desired: readonly KernelService[];
  actual: readonly KernelService[];
  /** Kernel services we created (recorded) or whose VIP we allocated; anything else is foreign and untouched. */
  owned: (key: string) => boolean;
}

/**
 * Order: new and changed services first (destinations need their service), then destination additions and
 * changes, then destination removals, then service removals (which take their destinations with them, so
 * those are not removed one by one).
 */
export function diff({ desired, actual, owned }: DiffInput): Operation[] {
  const have = new Map(actual.map((s) => [s.key, s]));
  const want = new Map(desired.map((s) => [s.key, s]));
  const services: Operation[] = [];
  const addDest: Operation[] = [];
  const delDest: Operation[] = [];
  const delSvc: Operation[] = [];

  for (const w of desired) {
    const h = have.get(w.key);
    if (!h) {
      services.push({ op: 'add-service', service: w });
      for (const d of w.destinations) addDest.push({ op: 'add-destination', service: w, destination: d });
      continue;
    }
    const changed = serviceChanges(w, h);
    if (changed.length > 0) services.push({ op: 'update-service', service: w, changed });
    const haveDests = new Map(h.destinations.map((d) => [destKey(d), d]));
    const wantDests = new Set(w.destinations.map(destKey));
    for (const d of w.destinations) {
      const hd = haveDests.get(destKey(d));
      if (!hd) addDest.push({ op: 'add-destination', service: w, destination: d });
      else {
        const dc = destinationChanges(d, hd);
        if (dc.length > 0) addDest.push({ op: 'update-destination', service: w, destination: d, changed: dc });
      }
    }
    for (const hd of h.destinations) {
      if (!wantDests.has(destKey(hd))) delDest.push({ op: 'delete-destination', service: w, destination: hd });
    }
  }
  for (const h of actual) {
    if (!want.has(h.key) && owned(h.key)) delSvc.push({ op: 'delete-service', service: h });
  }
  return [...services, ...addDest, ...delDest, ...delSvc];
}
