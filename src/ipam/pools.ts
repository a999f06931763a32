// Which pools may serve a Service, in which order: MetalLB's serviceAllocation semantics.
// - A pool without serviceAllocation serves every Service.
// - namespaces and namespaceSelectors together restrict the namespace: listed by name OR matched by a selector.
// - serviceSelectors restrict the Service's own labels (any selector of the list may match), ANDed with the above.
// - Order: lower priority number first; pools with a priority before pools without; ties keep config order,
//   so the answer never depends on anything but the config and the Service.
// - autoAssign: false pools are left out of automatic assignment; they serve a Service only by name or by a
//   requested address.
import type { PoolConfig } from '../config/types.js';
import { matchesAny } from '../util/labels.js';
import type { ServiceRequest } from './types.js';

type Who = Pick<ServiceRequest, 'namespace' | 'labels' | 'namespaceLabels'>;

export function poolAllows(pool: PoolConfig, svc: Who): boolean {
  const sa = pool.serviceAllocation;
  if (!sa) return true;
  if (sa.namespaces.length > 0 || sa.namespaceSelectors.length > 0) {
    const byName = sa.namespaces.includes(svc.namespace);
    const bySelector = sa.namespaceSelectors.length > 0 && matchesAny(sa.namespaceSelectors, svc.namespaceLabels);
    if (!byName && !bySelector) return false;
  }
  return matchesAny(sa.serviceSelectors, svc.labels);
}

/** Pools in allocation order (priority, then config order). */
export function orderPools(pools: readonly PoolConfig[]): PoolConfig[] {
  const rank = (p: PoolConfig) => p.serviceAllocation?.priority ?? Number.POSITIVE_INFINITY;
  return pools
    .map((p, i) => ({ p, i }))
    .sort((a, b) => rank(a.p) - rank(b.p) || a.i - b.i)
    .map((x) => x.p);
}

/** The pools that automatic assignment may use for this Service, best first. */
export const autoAssignPools = (ordered: readonly PoolConfig[], svc: Who): PoolConfig[] =>
  ordered.filter((p) => p.autoAssign && poolAllows(p, svc));
