// Whether each virtual service still has a healthy backend, and the transitions that become Events on the
// Service: `NoHealthyBackends` when the last one goes, `HealthyBackends` when one returns. Pure.
import type { DesiredVirtualService } from '../model/types.js';

export interface BackendsChange {
  /** `namespace/name` */
  service: string;
  serviceUid: string;
  healthy: boolean;
  /** The virtual services of the Service that changed this way, sorted. */
  vsKeys: string[];
  vrrpGroup: string | undefined;
  message: string;
}

const serving = (v: DesiredVirtualService): number => v.realServers.filter((r) => r.state === 'serving' && r.weight > 0).length;

/**
 * `prev` holds the last known answer per virtual service key; a virtual service seen for the first time is
 * taken to have been healthy, so one that starts without a healthy backend is reported too. One without any
 * candidate node (no eligible node, no ready local endpoint yet, caches still filling at start-up) is not a
 * health matter and changes nothing.
 */
export function backendTransitions(
  prev: ReadonlyMap<string, boolean>,
  vss: readonly DesiredVirtualService[],
  reasonsOf: (vs: DesiredVirtualService) => string[],
  candidatesOf: (vs: DesiredVirtualService) => number = (vs) => vs.realServers.length,
): { next: Map<string, boolean>; changes: BackendsChange[] } {
  const next = new Map<string, boolean>();
  const grouped = new Map<string, { vs: DesiredVirtualService; healthy: boolean; keys: string[]; reasons: string[]; count: number }>();
  for (const vs of vss) {
    if (candidatesOf(vs) === 0) {
      const was = prev.get(vs.key);
      if (was !== undefined) next.set(vs.key, was);
      continue;
    }
    const n = serving(vs);
    const healthy = n > 0;
    next.set(vs.key, healthy);
    if ((prev.get(vs.key) ?? true) === healthy) continue;
    const g = `${vs.serviceUid}|${healthy}`;
    let e = grouped.get(g);
    if (!e) grouped.set(g, (e = { vs, healthy, keys: [], reasons: [], count: 0 }));
    e.keys.push(vs.key);
    e.count += n;
    if (!healthy) for (const r of reasonsOf(vs)) if (!e.reasons.includes(r)) e.reasons.push(r);
  }
  const changes: BackendsChange[] = [];
  for (const e of grouped.values()) {
    e.keys.sort();
    const which = e.keys.join(', ');
    let message: string;
    if (e.healthy) {
      message = `${which}: traffic flows again (${e.count} healthy node${e.count === 1 ? '' : 's'})`;
    } else {
      const why = e.reasons.length > 0 ? `: ${e.reasons.slice(0, 5).join('; ')}${e.reasons.length > 5 ? `; and ${e.reasons.length - 5} more` : ''}` : '';
      message = `${which}: no healthy node, new connections fail${why}`;
    }
    changes.push({ service: e.vs.service, serviceUid: e.vs.serviceUid, healthy: e.healthy, vsKeys: e.keys, vrrpGroup: e.vs.vrrpGroup, message: message.length > 1000 ? `${message.slice(0, 997)}...` : message });
  }
  changes.sort((a, b) => (a.service < b.service ? -1 : a.service > b.service ? 1 : Number(a.healthy) - Number(b.healthy)));
  return { next, changes };
}
