// Translation between the IPVS client's objects and the reconciler's comparison shape. Pure, so the exact
// round trip (what we program reads back equal, hence a restart makes zero writes) is unit-tested.
import type { Forwarding } from '../config/types.js';
import type { IpvsOp } from '../ipvs/index.js';
import type { AddressServiceKey, Destination, SchedulerFlag, Service, ServiceSpec } from '../ipvs/types.js';
import { virtualServiceKey, type Protocol } from '../model/types.js';
import { sameDestinations } from './diff.js';
import type { KernelService, Operation } from './types.js';

// IPVS has three scheduler-specific flag bits; for sh and mh the first two are fallback and port.
const FLAG_NAMES: Record<string, Record<SchedulerFlag, string>> = {
  mh: { 'flag-1': 'mh-fallback', 'flag-2': 'mh-port', 'flag-3': 'flag-3' },
  sh: { 'flag-1': 'sh-fallback', 'flag-2': 'sh-port', 'flag-3': 'flag-3' },
};

export const flagName = (scheduler: string, f: SchedulerFlag): string => FLAG_NAMES[scheduler]?.[f] ?? f;

const upper = (p: string): Protocol => p.toUpperCase() as Protocol;

/** What fromKernel needs of a dumped service: IpvsClient.table() and snapshot() entries both qualify. */
export interface DumpedService {
  service: Pick<Service, 'family' | 'protocol' | 'address' | 'port' | 'fwmark' | 'scheduler' | 'schedulerFlags' | 'persistence'>;
  destinations: ReadonlyArray<Pick<Destination, 'address' | 'port' | 'weight' | 'forwarding'>>;
}

/** A dumped service in comparison form; undefined for fwmark services (never ours). */
export function fromKernel(s: DumpedService): KernelService | undefined {
  const svc = s.service;
  if (svc.fwmark || svc.address === undefined || svc.protocol === undefined) return undefined;
  return {
    key: virtualServiceKey(upper(svc.protocol), svc.address, svc.port),
    family: svc.family,
    protocol: upper(svc.protocol),
    address: svc.address,
    port: svc.port,
    scheduler: svc.scheduler,
    schedulerFlags: svc.schedulerFlags.map((f) => flagName(svc.scheduler, f)).sort(),
    persistenceTimeoutSeconds: svc.persistence?.timeout,
    destinations: s.destinations.map((d) => ({ address: d.address, port: d.port, weight: d.weight, forwarding: d.forwarding as Forwarding })),
  };
}

/**
 * Whether fromKernel(s) would equal `k` for the reconciler (destinations in any order), found without
 * building it. A resync of a table nothing changed then keeps the remembered objects instead of making
 * 10,000 services and 100,000 destinations anew, which was most of its own cost (garbage collection
 * included). The kernel lists destinations newest first, so reversed order is tried before a lookup.
 */
export function sameAsDumped(k: KernelService, s: DumpedService): boolean {
  const svc = s.service;
  if (svc.fwmark || svc.address !== k.address || svc.port !== k.port || svc.family !== k.family || svc.protocol === undefined || upper(svc.protocol) !== k.protocol) return false;
  if (svc.scheduler !== k.scheduler || svc.persistence?.timeout !== k.persistenceTimeoutSeconds) return false;
  if (svc.schedulerFlags.length !== k.schedulerFlags.length || svc.schedulerFlags.some((f) => !k.schedulerFlags.includes(flagName(svc.scheduler, f)))) return false;
  return sameDestinations(k.destinations, s.destinations);
}

/** The comparison-form key of a dumped service; undefined for fwmark services. */
export function dumpedKey(s: DumpedService): string | undefined {
  const svc = s.service;
  if (svc.fwmark || svc.address === undefined || svc.protocol === undefined) return undefined;
  return virtualServiceKey(upper(svc.protocol), svc.address, svc.port);
}

export const keyOf = (s: KernelService): AddressServiceKey => ({ address: s.address, protocol: s.protocol.toLowerCase() as AddressServiceKey['protocol'], port: s.port });

function specOf(s: KernelService): ServiceSpec {
  return {
    ...keyOf(s),
    scheduler: s.scheduler,
    schedulerFlags: s.schedulerFlags as ServiceSpec['schedulerFlags'],
    ...(s.persistenceTimeoutSeconds !== undefined ? { persistence: { timeout: s.persistenceTimeoutSeconds } } : {}),
  };
}

export function toIpvsOp(o: Operation): IpvsOp {
  switch (o.op) {
    case 'add-service':
      return { op: 'add-service', service: specOf(o.service) };
    case 'update-service':
      return { op: 'edit-service', service: specOf(o.service) };
    case 'delete-service':
      return { op: 'delete-service', service: keyOf(o.service) };
    case 'add-destination':
      return { op: 'add-dest', service: keyOf(o.service), dest: { address: o.destination.address, port: o.destination.port, weight: o.destination.weight, forwarding: o.destination.forwarding } };
    case 'update-destination':
      return { op: 'edit-dest', service: keyOf(o.service), dest: { address: o.destination.address, port: o.destination.port, weight: o.destination.weight, forwarding: o.destination.forwarding } };
    case 'delete-destination':
      return { op: 'delete-dest', service: keyOf(o.service), dest: { address: o.destination.address, port: o.destination.port } };
  }
}
