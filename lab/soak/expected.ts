// What every LB host's kernel should hold, computed by the soak from what the API shows (Services with their
// published addresses, Nodes) and the soak's own config, independently of the daemon's model code: if both
// share a mistake, the kernel check would pass on a wrong table. Only the VRRP group of a VIP comes from
// the product (groupForVip), because it is a hash every host must agree on, not a decision.
import { forwardingMethods, schedulers } from '../../src/config/types.js';
import { groupForVip } from '../../src/vrrp/groups.js';
import type { KernelService, KubeNode, KubeService } from './observation.js';
import { A } from './generator.js';
import { DAEMON, FOREIGN_SERVICE, GROUPS } from './world.js';

export interface ExpectedDest {
  address: string;
  port: number;
  forwarding: string;
  weight: number;
  /** A NotReady node near the end of its grace period: present with weight 0, or already removed. */
  optional: boolean;
}

export interface ExpectedService {
  key: string;
  vip: string;
  scheduler: string;
  flags: string[];
  persistent: number | undefined;
  dests: ExpectedDest[];
  /** `namespace/name`, or '' for the foreign service. */
  owner: string;
}

const EXCLUDE = 'node.kubernetes.io/exclude-from-external-load-balancers';
/** Slack around the NotReady grace period: node timestamps have 1 s resolution, the daemon re-checks every 5 s. */
const GRACE_EARLY_MS = 2_000;
const GRACE_LATE_MS = 9_000;

export const isOurs = (s: KubeService): boolean => s.spec.type === 'LoadBalancer' && !s.spec.loadBalancerClass;
export const serviceId = (s: KubeService): string => `${s.metadata.namespace ?? 'default'}/${s.metadata.name}`;
export const ingressIps = (s: KubeService): string[] => (s.status?.loadBalancer?.ingress ?? []).flatMap((i) => (i.ip ? [i.ip] : []));

function byAge(a: KubeService, b: KubeService): number {
  const ta = a.metadata.creationTimestamp ? Date.parse(a.metadata.creationTimestamp) : 0;
  const tb = b.metadata.creationTimestamp ? Date.parse(b.metadata.creationTimestamp) : 0;
  if (ta !== tb) return ta - tb;
  return a.metadata.uid < b.metadata.uid ? -1 : a.metadata.uid > b.metadata.uid ? 1 : 0;
}

export function schedulerOf(s: KubeService): string {
  const v = s.metadata.annotations?.[A.scheduler]?.trim();
  return v !== undefined && (schedulers as readonly string[]).includes(v) ? v : DAEMON.scheduler;
}

export function forwardingOf(s: KubeService): string {
  const v = s.metadata.annotations?.[A.forwarding]?.trim();
  return v !== undefined && (forwardingMethods as readonly string[]).includes(v) ? v : DAEMON.forwarding;
}

interface NodeTarget {
  name: string;
  ip: string;
  /** weight 1; or weight 0 (draining), or gone. */
  state: 'ready' | 'draining' | 'draining-or-gone' | 'gone';
}

export function nodeTargets(nodes: readonly KubeNode[], now: number): NodeTarget[] {
  const out: NodeTarget[] = [];
  const grace = DAEMON.notReadyGraceSeconds * 1000;
  for (const n of nodes) {
    if (n.metadata.deletionTimestamp || Object.prototype.hasOwnProperty.call(n.metadata.labels ?? {}, EXCLUDE)) continue;
    const ip = n.status?.addresses?.find((a) => a.type === 'InternalIP' && /^\d+\.\d+\.\d+\.\d+$/.test(a.address))?.address;
    if (!ip) continue;
    const ready = n.status?.conditions?.find((c) => c.type === 'Ready');
    let state: NodeTarget['state'] = 'ready';
    if (ready?.status !== 'True') {
      const since = ready?.lastTransitionTime ? Date.parse(ready.lastTransitionTime) : 0;
      const age = now - (Number.isFinite(since) ? since : 0);
      state = age < grace - GRACE_EARLY_MS ? 'draining' : age <= grace + GRACE_LATE_MS ? 'draining-or-gone' : 'gone';
    }
    out.push({ name: n.metadata.name, ip, state });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : 1));
}

/** The virtual services every LB host must hold, by key, the foreign service included. */
export function expectedTable(services: readonly KubeService[], nodes: readonly KubeNode[], now: number): Map<string, ExpectedService> {
  const table = new Map<string, ExpectedService>();
  const targets = nodeTargets(nodes, now).filter((t) => t.state !== 'gone');
  for (const svc of services.filter(isOurs).sort(byAge)) {
    const scheduler = schedulerOf(svc);
    const forwarding = forwardingOf(svc);
    const flags = scheduler === 'mh' ? ['mh-fallback', 'mh-port'] : [];
    const persistent = svc.spec.sessionAffinity === 'ClientIP' ? 10800 : undefined;
    for (const vip of ingressIps(svc)) {
      if (vip.includes(':')) continue;
      for (const p of svc.spec.ports ?? []) {
        const key = `${p.protocol ?? 'TCP'}/${vip}:${p.port}`;
        // Two Services on one (VIP, protocol, port): the older keeps it (an IPAM violation reports the clash).
        if (table.has(key)) continue;
        if (forwarding === 'nat' && !p.nodePort) continue;
        table.set(key, {
          key, vip, scheduler, flags, persistent, owner: serviceId(svc),
          dests: targets.map((t) => ({
            address: t.ip, port: forwarding === 'nat' ? p.nodePort! : p.port, forwarding,
            weight: t.state === 'ready' ? 1 : 0, optional: t.state === 'draining-or-gone',
          })),
        });
      }
    }
  }
  const f = FOREIGN_SERVICE;
  table.set(`${f.protocol}/${f.address}:${f.port}`, { key: `${f.protocol}/${f.address}:${f.port}`, vip: f.address, scheduler: f.scheduler, flags: [], persistent: undefined, dests: [], owner: '' });
  return table;
}

/** ipvsadm-like text of a service line, for diffs a person can read and paste. */
export function serviceLine(s: { key: string; scheduler: string; flags: string[]; persistent: number | undefined }): string {
  return `${s.key} ${s.scheduler}${s.flags.length ? ` (${s.flags.join(',')})` : ''}${s.persistent !== undefined ? ` persistent ${s.persistent}` : ''}`;
}

/** Differences between the kernel's table and the expected one, one line each; empty when they agree. */
export function diffTable(kernel: readonly KernelService[], want: ReadonlyMap<string, ExpectedService>): string[] {
  const out: string[] = [];
  const have = new Map(kernel.map((k) => [k.key, k]));
  for (const [key, w] of want) {
    const k = have.get(key);
    if (!k) {
      out.push(`missing service ${serviceLine(w)}${w.owner ? ` (for ${w.owner})` : ''}`);
      continue;
    }
    if (k.scheduler !== w.scheduler || k.flags.join(',') !== w.flags.join(',') || k.persistent !== w.persistent) {
      out.push(`service differs: kernel ${serviceLine(k)}, want ${serviceLine(w)}${w.owner ? ` (for ${w.owner})` : ''}`);
    }
    const dk = new Map(k.dests.map((d) => [`${d.address}:${d.port}`, d]));
    for (const d of w.dests) {
      const id = `${d.address}:${d.port}`;
      const got = dk.get(id);
      dk.delete(id);
      if (!got) {
        if (!d.optional) out.push(`${key}: missing destination ${id} ${d.forwarding} weight ${d.weight}`);
        continue;
      }
      if (got.forwarding !== d.forwarding || got.weight !== d.weight) out.push(`${key}: destination ${id} is ${got.forwarding} weight ${got.weight}, want ${d.forwarding} weight ${d.weight}`);
    }
    for (const [id, d] of dk) out.push(`${key}: unexpected destination ${id} ${d.forwarding} weight ${d.weight}`);
  }
  for (const [key, k] of have) if (!want.has(key)) out.push(`unexpected service ${serviceLine(k)}`);
  return out;
}

export const GROUP_NAMES = GROUPS.map((g) => g.name);
export const groupOf = (vip: string): string => groupForVip(vip, undefined, GROUP_NAMES)!;
