// The read views the API serves, computed from the IPAM engine and the ledger alone. The daemon serves them
// over its live parts; the CLI computes the same views from a read-only ledger when the daemon is down, so
// both show the same rows.
import type { PoolConfig } from '../config/types.js';
import type { Ipam } from '../ipam/engine.js';
import type { Allocation } from '../ipam/types.js';
import type { Ledger } from '../store/ledger.js';
import type { AllocationRow, AuditPage, Page, PoolUsage } from './state.js';

export interface AllocationFilter {
  namespace?: string;
  pool?: string;
  address?: string;
  offset: number;
  limit: number;
}

function orphanedAddresses(ipam: Ipam): Set<string> {
  const s = new Set<string>();
  for (const list of ipam.orphans().values()) for (const o of list) s.add(o.address);
  return s;
}

function allAllocations(ipam: Ipam): Allocation[] {
  return ipam.uids().flatMap((uid) => ipam.allocationsOf(uid));
}

function row(a: Allocation, orphans: Set<string>): AllocationRow {
  return {
    address: a.address, family: a.family, pool: a.pool, namespace: a.namespace, name: a.name, uid: a.uid,
    sharingKey: a.sharingKey ?? null, ports: a.ports, allocatedAt: new Date(a.allocatedAt).toISOString(), orphaned: orphans.has(a.address),
  };
}

export function poolUsage(pools: readonly PoolConfig[], ipam: Ipam): PoolUsage[] {
  const stats = new Map(ipam.poolStats().map((s) => [s.name, s]));
  return pools.map((pool) => {
    const s = stats.get(pool.name);
    const size = s?.size ?? 0n;
    const used = s?.used ?? 0;
    return {
      name: pool.name, size: size.toString(), used, free: (size - BigInt(used) - BigInt(s?.quarantined ?? 0)).toString(),
      orphaned: s?.orphaned ?? 0, autoAssign: pool.autoAssign, addresses: pool.addresses.map((r) => r.text),
    };
  });
}

/** Sorted by family, address, then uid, so pages are stable. */
export function allocationPage(ipam: Ipam, f: AllocationFilter): Page<AllocationRow> {
  const orphans = orphanedAddresses(ipam);
  const items = allAllocations(ipam)
    .filter((a) => (!f.namespace || a.namespace === f.namespace) && (!f.pool || a.pool === f.pool) && (!f.address || a.address === f.address))
    .sort((a, b) => (a.family - b.family) || (a.value < b.value ? -1 : a.value > b.value ? 1 : a.uid < b.uid ? -1 : 1));
  return { items: items.slice(f.offset, f.offset + f.limit).map((a) => row(a, orphans)), total: items.length, offset: f.offset, limit: f.limit };
}

export function allocationsOfAddress(ipam: Ipam, address: string): AllocationRow[] {
  const orphans = orphanedAddresses(ipam);
  return allAllocations(ipam).filter((a) => a.address === address).map((a) => row(a, orphans));
}

export function allocationsOfService(ipam: Ipam, namespace: string, name: string): AllocationRow[] {
  const orphans = orphanedAddresses(ipam);
  return allAllocations(ipam).filter((a) => a.namespace === namespace && a.name === name).map((a) => row(a, orphans));
}

export function allocationsOfUid(ipam: Ipam, uid: string): AllocationRow[] {
  const orphans = orphanedAddresses(ipam);
  return ipam.allocationsOf(uid).map((a) => row(a, orphans));
}

export function auditPage(ledger: Ledger, page: { before?: number; limit: number }): AuditPage {
  const rows = ledger.audit({ limit: page.limit, beforeId: page.before });
  return {
    items: rows.map((r) => ({ id: r.id, at: new Date(r.at).toISOString(), action: r.action, reason: r.reason, service: r.service, address: r.address, pool: r.pool, host: r.host, term: r.term })),
    next: rows.length === page.limit ? rows[rows.length - 1]!.id : null,
  };
}
