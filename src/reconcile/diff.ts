// The minimal ordered set of kernel operations that turns `actual` into `desired`, touching only what we
// own. SET in place wherever IPVS allows it (scheduler, flags, persistence, weight, forwarding), because a
// delete-and-add would drop the connections of that service or destination.
import type { DesiredRealServer, DesiredVirtualService } from '../model/types.js';
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

const destKey = (d: { address: string; port: number }) => (d.address.includes(':') ? `[${d.address}]:${d.port}` : `${d.address}:${d.port}`);

function sameFlags(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function serviceChanges(want: KernelService, have: KernelService): string[] {
  const changed: string[] = [];
  if (want.scheduler !== have.scheduler) changed.push('scheduler');
  if (!sameFlags([...want.schedulerFlags].sort(), [...have.schedulerFlags].sort())) changed.push('schedulerFlags');
  if (want.persistenceTimeoutSeconds !== have.persistenceTimeoutSeconds) changed.push('persistence');
  return changed;
}

function destinationChanges(want: KernelDestination, have: KernelDestination): string[] {
  const changed: string[] = [];
  if (want.weight !== have.weight) changed.push('weight');
  if (want.forwarding !== have.forwarding) changed.push('forwarding');
  return changed;
}

/** A destination as compared: the reconciler's, or one as the IPVS client dumped it (wider forwarding names). */
type ComparedDestination = Pick<KernelDestination, 'address' | 'port' | 'weight'> & { forwarding: string };

const sameDest = (a: ComparedDestination, b: ComparedDestination): boolean =>
  a.port === b.port && a.address === b.address && a.weight === b.weight && a.forwarding === b.forwarding;

/** Same destinations regardless of order, without allocating in the common cases: the kernel lists them newest
 * first, so a table programmed in desired order reads back reversed. */
export function sameDestinations(a: readonly ComparedDestination[], b: readonly ComparedDestination[]): boolean {
  const n = a.length;
  if (n !== b.length) return false;
  let i = 0;
  while (i < n && sameDest(a[i]!, b[i]!)) i++;
  if (i === n) return true;
  i = 0;
  while (i < n && sameDest(a[i]!, b[n - 1 - i]!)) i++;
  if (i === n) return true;
  const byKey = new Map(b.map((d) => [destKey(d), d]));
  if (byKey.size !== n) return false;
  for (const d of a) {
    const o = byKey.get(destKey(d));
    if (!o || !sameDest(d, o)) return false;
  }
  return true;
}

/** Whether two views of a virtual service would need no operation between them. Flags are compared sorted
 * (both sides keep them sorted: toKernelService and fromKernel). */
export function sameService(a: KernelService, b: KernelService): boolean {
  if (a === b) return true;
  return a.scheduler === b.scheduler && a.persistenceTimeoutSeconds === b.persistenceTimeoutSeconds && sameFlags(a.schedulerFlags, b.schedulerFlags) && sameDestinations(a.destinations, b.destinations);
}

function sameAsRealServer(r: DesiredRealServer, d: KernelDestination, forwarding: string): boolean {
  return r.port === d.port && r.address === d.address && r.weight === d.weight && forwarding === d.forwarding;
}

/** Whether the kernel's view of a virtual service already is what the model wants, compared without building
 * the kernel form of the desired one (the daemon hands over a new desired list on every change). */
export function matchesKernel(v: DesiredVirtualService, h: KernelService): boolean {
  if (v.scheduler !== h.scheduler || v.persistenceTimeoutSeconds !== h.persistenceTimeoutSeconds) return false;
  if (v.schedulerFlags.length !== h.schedulerFlags.length || v.schedulerFlags.some((f) => !h.schedulerFlags.includes(f))) return false;
  const rs = v.realServers;
  const ds = h.destinations;
  const n = rs.length;
  if (n !== ds.length) return false;
  let i = 0;
  while (i < n && sameAsRealServer(rs[i]!, ds[i]!, v.forwarding)) i++;
  if (i === n) return true;
  i = 0;
  while (i < n && sameAsRealServer(rs[i]!, ds[n - 1 - i]!, v.forwarding)) i++;
  if (i === n) return true;
  const byKey = new Map(ds.map((d) => [destKey(d), d]));
  if (byKey.size !== n) return false;
  for (const r of rs) {
    const d = byKey.get(destKey(r));
    if (!d || !sameAsRealServer(r, d, v.forwarding)) return false;
  }
  return true;
}

/** Real server lists equal for the kernel (address, port, weight, in order); `memo` remembers, per new list,
 * the old list it was found equal to: the model shares one list among every virtual service whose real
 * servers cannot differ, so 10,000 services over one list cost one comparison of it. */
function sameRealServerList(a: readonly DesiredRealServer[], b: readonly DesiredRealServer[], memo: Map<readonly DesiredRealServer[], readonly DesiredRealServer[]>): boolean {
  if (a === b || memo.get(b) === a) return true;
  const n = a.length;
  if (n !== b.length) return false;
  for (let i = 0; i < n; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.port !== y.port || x.weight !== y.weight || x.address !== y.address) return false;
  }
  memo.set(b, a);
  return true;
}

/** Whether `v` asks the kernel for exactly what `prev` asked (a sufficient check: flags and real servers in
 * the same order). The key is the same by construction. */
function unchangedSince(prev: DesiredVirtualService, v: DesiredVirtualService, memo: Map<readonly DesiredRealServer[], readonly DesiredRealServer[]>): boolean {
  if (prev === v) return true;
  return prev.scheduler === v.scheduler && prev.persistenceTimeoutSeconds === v.persistenceTimeoutSeconds && prev.forwarding === v.forwarding
    && sameFlags(prev.schedulerFlags, v.schedulerFlags) && sameRealServerList(prev.realServers, v.realServers, memo);
}

export interface ChangeScan {
  /** Desired services that differ from the kernel, in kernel form. */
  changed: KernelService[];
  /** Keys of every desired service (the `synced` map itself when one is given). */
  keys: { has(key: string): boolean };
  /** Desired services compared in full with their kernel entry (the rest were unchanged since `synced`). */
  compared: number;
  /** Every service in `kernel` is desired: no removal can be needed. */
  coversKernel: boolean;
}

/**
 * The desired services that differ from the kernel, and the keys of all desired services: what diff() needs
 * when most of a large table is unchanged. `synced` (key → the desired entry the kernel entry is known to
 * equal, from the last pass; each of its keys must be in `kernel`) lets an entry that asks for the same as
 * before skip the comparison with the kernel; it is updated to the new desired entries, valid once their
 * operations succeed. Without it (or after a kernel read) every entry is compared.
 */
export function changedServices(desired: Iterable<DesiredVirtualService>, kernel: ReadonlyMap<string, KernelService>, synced = new Map<string, DesiredVirtualService>()): ChangeScan {
  const changed: KernelService[] = [];
  const memo = new Map<readonly DesiredRealServer[], readonly DesiredRealServer[]>();
  const before = synced.size;
  let known = 0;
  let inKernel = 0;
  let compared = 0;
  for (const v of desired) {
    // Every key in `synced` is in `kernel` (the caller drops both together), so an unchanged entry costs
    // this one lookup.
    const prev = synced.get(v.key);
    if (prev) {
      known++;
      if (unchangedSince(prev, v, memo)) {
        inKernel++;
        if (prev !== v) synced.set(v.key, v);
        continue;
      }
    }
    const h = kernel.get(v.key);
    if (h) inKernel++;
    compared++;
    if (!h || !matchesKernel(v, h)) changed.push(toKernelService(v));
    synced.set(v.key, v);
  }
  // Keys no longer desired are still in the map: rebuild it (a removal is the rare case).
  if (known < before) {
    synced.clear();
    for (const v of desired) synced.set(v.key, v);
  }
  return { changed, keys: synced, compared, coversKernel: inKernel === kernel.size };
}

/**
 * changedServices for a pass that knows which keys changed (Reconciler.patch): only `keys` are looked at;
 * a key no longer desired but in `kernel` is returned in `removed` (the caller deletes it if owned).
 */
export function changedByKey(keys: Iterable<string>, desired: ReadonlyMap<string, DesiredVirtualService>, kernel: ReadonlyMap<string, KernelService>, synced: Map<string, DesiredVirtualService>): { changed: KernelService[]; compared: number; removed: string[] } {
  const changed: KernelService[] = [];
  const removed: string[] = [];
  const memo = new Map<readonly DesiredRealServer[], readonly DesiredRealServer[]>();
  let compared = 0;
  for (const key of keys) {
    const v = desired.get(key);
    if (!v) {
      synced.delete(key);
      if (kernel.has(key)) removed.push(key);
      continue;
    }
    const prev = synced.get(key);
    if (prev && unchangedSince(prev, v, memo)) {
      synced.set(key, v);
      continue;
    }
    compared++;
    const h = kernel.get(key);
    if (!h || !matchesKernel(v, h)) changed.push(toKernelService(v));
    synced.set(key, v);
  }
  return { changed, compared, removed };
}

export interface DiffInput {
  desired: readonly KernelService[];
  /** Keys of every desired service when `desired` holds only the changed ones (see changedServices). */
  desiredKeys?: { has(key: string): boolean };
  /** The caller knows every service in `actual` is desired (ChangeScan.coversKernel): skip the removal scan. */
  noRemovals?: boolean;
  /** The kernel's table, as a list or keyed by KernelService.key. */
  actual: readonly KernelService[] | ReadonlyMap<string, KernelService>;
  /** Kernel services we created (recorded) or whose VIP we allocated; anything else is foreign and untouched. */
  owned: (key: string) => boolean;
}

/**
 * Order: new and changed services first (destinations need their service), then destination additions and
 * changes, then destination removals, then service removals (which take their destinations with them, so
 * those are not removed one by one). Unchanged services cost one lookup and a comparison, no allocation: a
 * no-op pass over 10,000 services is the common case.
 */
export function diff({ desired, desiredKeys, noRemovals, actual, owned }: DiffInput): Operation[] {
  const have: ReadonlyMap<string, KernelService> = Array.isArray(actual) ? new Map(actual.map((s) => [s.key, s])) : (actual as ReadonlyMap<string, KernelService>);
  const want = new Set<string>();
  const services: Operation[] = [];
  const addDest: Operation[] = [];
  const delDest: Operation[] = [];
  const delSvc: Operation[] = [];

  for (const w of desired) {
    want.add(w.key);
    const h = have.get(w.key);
    if (!h) {
      services.push({ op: 'add-service', service: w });
      for (const d of w.destinations) addDest.push({ op: 'add-destination', service: w, destination: d });
      continue;
    }
    if (sameService(w, h)) continue;
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
  const wanted = desiredKeys ?? want;
  if (!noRemovals) {
    for (const h of have.values()) {
      if (!wanted.has(h.key) && owned(h.key)) delSvc.push({ op: 'delete-service', service: h });
    }
  }
  return [...services, ...addDest, ...delDest, ...delSvc];
}
