// The CLI's fallback when the daemon's API does not answer: the same read views, computed from the ledger
// opened read-only (the daemon holds it exclusively while it runs, so this only works while it is down).
import { join } from 'node:path';
import type { AllocationRow, Page, PoolUsage } from '../api/state.js';
import { allocationPage, allocationsOfService, auditPage, poolUsage, type AllocationFilter } from '../api/views.js';
import type { Config } from '../config/types.js';
import { Ipam } from '../ipam/engine.js';
import { Ledger } from '../store/ledger.js';

export interface LedgerView {
  readonly path: string;
  pools(): PoolUsage[];
  allocations(f: AllocationFilter): Page<AllocationRow>;
  service(namespace: string, name: string): AllocationRow[];
  lastEvent(): { at: string; action: string; service: string | null; address: string | null } | undefined;
  close(): void;
}

export const ledgerPath = (config: Config): string => join(config.stateDir, 'ledger.sqlite');

/** Throws LedgerError (LOCKED while a daemon runs, CANNOT_OPEN when there is no ledger yet). */
export function openLedgerView(config: Config): LedgerView {
  const path = ledgerPath(config);
  const ledger = Ledger.open(path, { host: config.hostName, readonly: true });
  let ipam: Ipam;
  try {
    ipam = new Ipam(config.pools, { quarantineSeconds: config.ipam.releaseQuarantineSeconds }, ledger.load());
  } catch (err) {
    ledger.close();
    throw err;
  }
  return {
    path,
    pools: () => poolUsage(config.pools, ipam),
    allocations: (f) => allocationPage(ipam, f),
    service: (namespace, name) => allocationsOfService(ipam, namespace, name),
    lastEvent: () => auditPage(ledger, { limit: 1 }).items[0],
    close: () => ledger.close(),
  };
}
