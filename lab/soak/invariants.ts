// The invariants the soak checks after every settle, as a pure function of one observation and what the
// harness knows (log lines, faults, the plan). Each check has a stable name; a violation carries the host
// or Service it is about and a diff a person can act on.
import { parseService } from '../../src/ipam/service.js';
import { expectedTable, diffTable, forwardingOf, groupOf, ingressIps, isOurs, schedulerOf, serviceId } from './expected.js';
import { A, type ServiceSpec } from './generator.js';
import type { AllocationRow, HostObservation, KubeEvent, KubeService, Observation, Read } from './observation.js';
import { GROUPS, HOSTS, markerOf, POOLS, poolOfAddress, VIP_PREFIX } from './world.js';
import { forwardingMethods, schedulers } from '../../src/config/types.js';

export interface Violation {
  check: string;
  host?: string;
  service?: string;
  message: string;
  /** Lines of a diff or other context. */
  detail?: string[];
}

export interface CheckResult {
  /** `check` or `check@host` of every check that passed. */
  passed: string[];
  violations: Violation[];
}

export interface LogError {
  host: string;
  time: number;
  msg: string;
  line: string;
}

export interface CheckContext {
  /** The Services the harness created and has not deleted, as it made them. */
  plan: Readonly<Record<string, ServiceSpec>>;
  /** Daemon log lines at level error or worse since the run started. */
  logErrors: readonly LogError[];
  /** Whether a log error is explained by a fault the harness injected (see faults.ts). */
  explained: (e: LogError) => boolean;
  /** Daemons that exited without the harness killing them. */
  unexpectedExits: readonly { host: string; exit: string; logTail: string }[];
}

const REFUSALS = new Set(['AllocationFailed', 'SharingConflict', 'InvalidAnnotation']);

// ---- helpers ---------------------------------------------------------------------------------------

const portsOf = (s: KubeService): string[] => (s.spec.ports ?? []).map((p) => `${p.protocol ?? 'TCP'}/${p.port}`).sort();
const overlap = (a: readonly string[], b: readonly string[]): string | undefined => a.find((x) => b.includes(x));
const keyOf = (s: KubeService): string | undefined => s.metadata.annotations?.[A.share]?.trim();

/** ipvs-lb's Events on a Service (by uid), newest last. */
function eventsOf(events: readonly KubeEvent[], uid: string): KubeEvent[] {
  const t = (e: KubeEvent) => Date.parse(e.lastTimestamp ?? e.firstTimestamp ?? '') || 0;
  return events.filter((e) => e.involvedObject.uid === uid && e.source?.component === 'ipvs-lb').sort((a, b) => t(a) - t(b));
}

/** The Service's latest ipvs-lb Event, when it is a refusal: the allocator said why it did not (fully) serve it. */
// The data plane's warnings say what it could not serve of an address IPAM gave; they are no IPAM decision
// and leave an earlier refusal standing (a sharer refused its move that then adds a port its co-holder
// serves gets PortConflict after the refusal, which kubectl describe shows with it).
const DATA_PLANE_WARNINGS = new Set(['PortConflict', 'NoHealthyBackends', 'NoBackendFamily']);

function latestRefusal(events: readonly KubeEvent[], uid: string): KubeEvent | undefined {
  const mine = eventsOf(events, uid).filter((e) => (e.type === 'Warning' && !DATA_PLANE_WARNINGS.has(e.reason ?? '')) || e.reason === 'IPAllocated' || e.reason === 'IPReleased');
  const last = mine[mine.length - 1];
  return last && REFUSALS.has(last.reason ?? '') ? last : undefined;
}

/**
 * Why the Service's published address does not satisfy its current request, or undefined when it does.
 * These are the IPAM rules a person can see from outside: one address, from a pool that may serve it, the
 * requested address or pool when asked, and lawful sharing.
 */
export interface Unsatisfied {
  why: string;
  /** Set when the trouble is sharing: the co-holders involved (a refusal on one of them explains it). */
  sharingWith?: KubeService[];
}

export function unsatisfied(svc: KubeService, holders: ReadonlyMap<string, KubeService[]>): Unsatisfied | undefined {
  const why = unmet(svc, holders);
  return typeof why === 'string' ? { why } : why;
}

function unmet(svc: KubeService, holders: ReadonlyMap<string, KubeService[]>): string | Unsatisfied | undefined {
  const parsed = parseService(svc as Parameters<typeof parseService>[0]);
  if (!parsed.ok) return `its request does not parse: ${parsed.refusal.message}`;
  const req = parsed.service;
  const ips = ingressIps(svc);
  if (ips.length === 0) return 'it has no address';
  if (ips.length > 1) return `it has ${ips.length} addresses (${ips.join(', ')}) but is single-stack`;
  const ip = ips[0]!;
  if ((svc.status?.loadBalancer?.ingress ?? []).some((i) => i.ipMode !== 'VIP')) return `its ingress lacks ipMode VIP`;
  const pool = poolOfAddress(ip);
  if (!pool) return `${ip} is in no pool`;
  const wanted = req.requestedIPs[0]?.address;
  if (wanted !== undefined && wanted !== ip) return `it asks for ${wanted} but holds ${ip}`;
  if (req.requestedPool !== undefined && req.requestedPool !== pool.name) return `it asks for pool ${req.requestedPool} but holds ${ip} of pool ${pool.name}`;
  const others = (holders.get(ip) ?? []).filter((o) => o.metadata.uid !== svc.metadata.uid);
  if (others.length > 0) {
    const k = keyOf(svc);
    if (k === undefined) return { why: `it shares ${ip} with ${others.map(serviceId).join(', ')} without a sharing key`, sharingWith: others };
    for (const o of others) {
      if (keyOf(o) !== k) return { why: `it shares ${ip} under key ${k} with ${serviceId(o)}, whose key is ${keyOf(o) ?? '(none)'}`, sharingWith: others };
      const p = overlap(portsOf(svc), portsOf(o));
      if (p) return { why: `it shares ${ip} with ${serviceId(o)}, which also uses ${p}`, sharingWith: others };
    }
  }
  return undefined;
}

function lawfulSharing(group: readonly KubeService[]): string | undefined {
  const keys = new Set(group.map(keyOf));
  if (keys.has(undefined)) return `${group.filter((s) => keyOf(s) === undefined).map(serviceId).join(', ')} ha${group.filter((s) => keyOf(s) === undefined).length > 1 ? 've' : 's'} no sharing key`;
  if (keys.size > 1) return `different sharing keys: ${group.map((s) => `${serviceId(s)}=${keyOf(s)}`).join(', ')}`;
  for (let i = 0; i < group.length; i++) {
    for (let j = i + 1; j < group.length; j++) {
      const p = overlap(portsOf(group[i]!), portsOf(group[j]!));
      if (p) return `${serviceId(group[i]!)} and ${serviceId(group[j]!)} both use ${p}`;
    }
  }
  return undefined;
}

const rowId = (r: AllocationRow) => `${r.uid} ${r.address} pool=${r.pool} key=${r.sharingKey ?? '-'} ports=${r.ports.join(',')}${r.orphaned ? ' ORPHANED' : ''}`;

// ---- the checks ------------------------------------------------------------------------------------

export function checkInvariants(obs: Observation, ctx: CheckContext): CheckResult {
  const passed: string[] = [];
  const violations: Violation[] = [];
  const run = (name: string, host: string | undefined, body: () => Violation[]) => {
    let vs: Violation[];
    try {
      vs = body();
    } catch (err) {
      vs = [{ check: name, message: `check failed to run: ${(err as Error).message}` }];
    }
    if (vs.length === 0) passed.push(host ? `${name}@${host}` : name);
    else violations.push(...vs.map((v) => ({ ...v, check: name, ...(host ? { host } : {}) })));
  };
  const need = <T>(r: Read<T>, what: string, host?: string): T => {
    if (!r.ok) throw new Error(`${what}${host ? ` of ${host}` : ''}: ${r.error}`);
    return r.value;
  };

  if (!obs.services.ok || !obs.nodes.ok || !obs.events.ok) {
    const errs = [obs.services, obs.nodes, obs.events].flatMap((r) => (r.ok ? [] : [r.error]));
    violations.push({ check: 'observe.api', message: 'could not read the API', detail: errs });
    return { passed, violations };
  }
  const services = obs.services.value.filter(isOurs);
  const events = obs.events.value;
  const holders = new Map<string, KubeService[]>();
  for (const s of services) for (const ip of ingressIps(s)) holders.set(ip, [...(holders.get(ip) ?? []), s]);
  const refused = new Map(services.map((s) => [s.metadata.uid, latestRefusal(events, s.metadata.uid)]));
  const why = new Map(services.map((s) => [s.metadata.uid, unsatisfied(s, holders)]));
  const byUid = new Map(services.map((s) => [s.metadata.uid, s]));

  // The harness's own bookkeeping: the API holds exactly what the plan made (no lost or doubled operation).
  run('harness.api-matches-plan', undefined, () => {
    const out: Violation[] = [];
    const api = new Map(obs.services.ok ? obs.services.value.map((s) => [s.metadata.name, s]) : []);
    for (const [name, spec] of Object.entries(ctx.plan)) {
      const s = api.get(name);
      if (!s) {
        out.push({ check: '', service: name, message: 'the plan created it but the API does not hold it' });
        continue;
      }
      const ann = Object.fromEntries(Object.entries(s.metadata.annotations ?? {}).filter(([k]) => k.startsWith('ipvs-lb.io/')).sort());
      const want = Object.fromEntries(Object.entries(spec.annotations).sort());
      if (JSON.stringify(ann) !== JSON.stringify(want)) out.push({ check: '', service: name, message: `annotations ${JSON.stringify(ann)}, plan ${JSON.stringify(want)}` });
      const ports = portsOf(s).join(',');
      const wantPorts = spec.ports.map((p) => `${p.protocol}/${p.port}`).sort().join(',');
      if (ports !== wantPorts) out.push({ check: '', service: name, message: `ports ${ports}, plan ${wantPorts}` });
      if ((s.spec.loadBalancerIP || undefined) !== spec.loadBalancerIP) out.push({ check: '', service: name, message: `loadBalancerIP ${s.spec.loadBalancerIP ?? '(none)'}, plan ${spec.loadBalancerIP ?? '(none)'}` });
    }
    for (const name of api.keys()) if (name !== 'kubernetes' && !ctx.plan[name]) out.push({ check: '', service: name, message: 'the API holds it but the plan deleted it or never made it' });
    return out;
  });

  // 1. No address on two Services unless they share a key and keep their ports apart. A leftover the
  //    allocator could not undo is lawful only while it reports the refusal on the Service that must move.
  run('ipam.no-unlawful-sharing', undefined, () => {
    const out: Violation[] = [];
    for (const [ip, group] of holders) {
      if (group.length < 2) continue;
      const problem = lawfulSharing(group);
      if (!problem) continue;
      const rest = group.filter((s) => !refused.get(s.metadata.uid));
      if (rest.length < group.length && (rest.length < 2 || !lawfulSharing(rest))) continue;
      out.push({ check: '', message: `${ip} is on ${group.map(serviceId).join(', ')}: ${problem}`, detail: group.map((s) => `${serviceId(s)} uid=${s.metadata.uid} key=${keyOf(s) ?? '-'} ports=${portsOf(s).join(',')}`) });
    }
    return out;
  });

  run('ipam.addresses-in-pools', undefined, () => {
    const out: Violation[] = [];
    for (const ip of holders.keys()) {
      if (!poolOfAddress(ip)) out.push({ check: '', message: `${ip} (on ${holders.get(ip)!.map(serviceId).join(', ')}) is in no pool (${POOLS.map((p) => `${p.name} ${VIP_PREFIX}${p.first}-${p.last}`).join(', ')})` });
      else if (/\.(0|255)$/.test(ip)) out.push({ check: '', message: `${ip} ends in .0/.255 although every pool avoids buggy IPs` });
    }
    return out;
  });

  // 2. Every Service is served as it asks, or the allocator said why not (an Event), so nothing is left
  //    pending without a word.
  run('ipam.request-served-or-reported', undefined, () => {
    const out: Violation[] = [];
    for (const s of services) {
      const w = why.get(s.metadata.uid);
      if (!w || refused.get(s.metadata.uid)) continue;
      // A sharer that kept its address lawfully (its move was refused) explains the others' trouble too.
      if (w.sharingWith?.some((o) => refused.get(o.metadata.uid))) continue;
      const last = eventsOf(events, s.metadata.uid).slice(-3).map((e) => `${e.lastTimestamp} ${e.type} ${e.reason}: ${e.message}`);
      out.push({ check: '', service: serviceId(s), message: `not served as asked (${w.why}) and its latest ipvs-lb Event is no refusal`, detail: last.length ? last : ['(no ipvs-lb Event at all)'] });
    }
    return out;
  });

  // Data-plane annotations that do not parse are worked around (defaults) and must be reported as an Event.
  run('events.bad-annotations-reported', undefined, () => {
    const out: Violation[] = [];
    for (const s of services) {
      for (const [key, valid] of [[A.scheduler, schedulers], [A.forwarding, forwardingMethods]] as const) {
        const raw = s.metadata.annotations?.[key];
        if (raw === undefined || (valid as readonly string[]).includes(raw.trim())) continue;
        const reported = eventsOf(events, s.metadata.uid).some((e) => e.reason === 'InvalidAnnotation' && (e.message ?? '').includes(key) && (e.message ?? '').includes(raw));
        if (!reported) out.push({ check: '', service: serviceId(s), message: `annotation ${key}=${JSON.stringify(raw)} is invalid and no InvalidAnnotation Event names it (the daemon falls back to ${key === A.scheduler ? schedulerOf(s) : forwardingOf(s)})` });
      }
    }
    return out;
  });

  // 3. Both ledgers hold what the Service statuses show, with the facts (key, ports) of the current request.
  const hosts = new Map(obs.hosts.map((h) => [h.host, h]));
  const rowsOf = (h: HostObservation) => need(h.allocations, 'ledger', h.host);
  for (const h of obs.hosts) {
    run('ledger.matches-status', h.host, () => {
      const out: Violation[] = [];
      const rows = rowsOf(h);
      const byUidRows = new Map<string, AllocationRow[]>();
      for (const r of rows) byUidRows.set(r.uid, [...(byUidRows.get(r.uid) ?? []), r]);
      for (const s of services) {
        const want = ingressIps(s).sort().join(',');
        const have = (byUidRows.get(s.metadata.uid) ?? []).map((r) => r.address).sort().join(',');
        if (want !== have) out.push({ check: '', service: serviceId(s), message: `ledger holds ${have || '(nothing)'}, status shows ${want || '(nothing)'}` });
      }
      for (const [uid, list] of byUidRows) {
        if (!byUid.has(uid)) out.push({ check: '', message: `ledger holds ${list.map((r) => r.address).join(',')} for ${list[0]!.namespace}/${list[0]!.name} (uid ${uid}), which is not in the API`, detail: list.map(rowId) });
      }
      for (const r of rows) if (r.orphaned) out.push({ check: '', message: `ledger row is orphaned: ${rowId(r)}` });
      return out;
    });
    run('ledger.facts-current', h.host, () => {
      const out: Violation[] = [];
      for (const r of rowsOf(h)) {
        const s = byUid.get(r.uid);
        if (!s || why.get(r.uid)) continue;
        const key = keyOf(s) ?? null;
        const ports = portsOf(s).join(',');
        if (r.sharingKey !== key || r.ports.slice().sort().join(',') !== ports || r.name !== s.metadata.name) {
          out.push({ check: '', service: serviceId(s), message: `ledger records ${r.address} with key ${r.sharingKey ?? '(none)'} ports ${r.ports.join(',')}, the Service has key ${key ?? '(none)'} ports ${ports}` });
        }
      }
      return out;
    });
  }
  run('ledger.hosts-agree', undefined, () => {
    const [h1, h2] = HOSTS.map((h) => hosts.get(h.name)!);
    const a = new Set(rowsOf(h1!).map(rowId));
    const b = new Set(rowsOf(h2!).map(rowId));
    const only1 = [...a].filter((x) => !b.has(x)).map((x) => `only on ${h1!.host}: ${x}`);
    const only2 = [...b].filter((x) => !a.has(x)).map((x) => `only on ${h2!.host}: ${x}`);
    return only1.length + only2.length === 0 ? [] : [{ check: '', message: `the ledgers differ in ${only1.length + only2.length} row(s)`, detail: [...only1, ...only2] }];
  });

  // 4. Each LB host's kernel holds exactly the desired table (the foreign service untouched).
  const want = expectedTable(services, obs.nodes.value, obs.at);
  for (const h of obs.hosts) {
    run('kernel.matches-desired', h.host, () => {
      const d = diffTable(need(h.ipvs, 'kernel', h.host), want);
      return d.length === 0 ? [] : [{ check: '', message: `IPVS table differs from the desired state in ${d.length} place(s)`, detail: d }];
    });
  }

  // 5. VRRP: one master per group; VIPs bound exactly on the master of their group; the daemon's view follows
  //    keepalived; both sync daemons run.
  const markers = new Map(GROUPS.map((g) => [g.name, obs.hosts.filter((h) => h.addresses.ok && h.addresses.value.includes(markerOf(g))).map((h) => h.host)]));
  run('vrrp.one-master-per-group', undefined, () => {
    const out: Violation[] = [];
    for (const g of GROUPS) {
      const m = markers.get(g.name)!;
      if (m.length !== 1) out.push({ check: '', message: `group ${g.name} has ${m.length === 0 ? 'no master' : `${m.length} masters (${m.join(', ')})`} (marker ${markerOf(g)})` });
    }
    return out;
  });
  const wantVips = new Set([...want.values()].filter((v) => v.owner !== '').map((v) => v.vip));
  for (const h of obs.hosts) {
    const mine = new Set(GROUPS.filter((g) => markers.get(g.name)!.includes(h.host)).map((g) => g.name));
    run('vip.bound-only-on-master', h.host, () => {
      const out: string[] = [];
      const bound = need(h.addresses, 'addresses', h.host).filter((a) => a.startsWith(VIP_PREFIX));
      for (const v of bound) {
        if (!wantVips.has(v)) out.push(`${v} is bound but no Service is served on it`);
        else if (!mine.has(groupOf(v))) out.push(`${v} (group ${groupOf(v)}) is bound but this host is not master of ${groupOf(v)}`);
      }
      for (const v of wantVips) if (mine.has(groupOf(v)) && !bound.includes(v)) out.push(`${v} (group ${groupOf(v)}) is not bound although this host is its group's master`);
      return out.length === 0 ? [] : [{ check: '', message: `${out.length} VIP placement problem(s); master of ${[...mine].join(',') || 'no group'}`, detail: out }];
    });
    run('vrrp.daemon-agrees-with-keepalived', h.host, () => {
      const out: string[] = [];
      const view = new Map(need(h.vrrp, 'vrrp', h.host).map((g) => [g.name, g.state]));
      for (const g of GROUPS) {
        const state = view.get(g.name) ?? '(missing)';
        const want = mine.has(g.name) ? 'MASTER' : 'BACKUP';
        if (state !== want) out.push(`group ${g.name}: daemon says ${state}, keepalived's marker says ${want}`);
      }
      return out.length === 0 ? [] : [{ check: '', message: out.join('; ') }];
    });
    // Both sync daemons run while VRRP does, whatever the states (docs/vrrp.md: switching them lost connections).
    run('sync.both-running', h.host, () => {
      const s = need(h.sync, 'sync', h.host);
      return s.master && s.backup ? [] : [{ check: '', message: `sync daemons master=${s.master} backup=${s.backup}, want both running` }];
    });
  }

  // 6. Nothing left unreported: daemons up and healthy, every error line explained by an injected fault.
  for (const h of obs.hosts) {
    run('health.ready', h.host, () => {
      const v = need(h.health, 'health', h.host);
      const bad = !v.ready || v.checks.kubernetes !== true || v.messages.length > 0;
      return bad ? [{ check: '', message: `readyz: ready=${v.ready} checks=${JSON.stringify(v.checks)}`, detail: v.messages }] : [];
    });
    run('logs.no-unexplained-errors', h.host, () => {
      const bad = ctx.logErrors.filter((e) => e.host === h.host && !ctx.explained(e));
      return bad.length === 0 ? [] : [{ check: '', message: `${bad.length} error line(s) no injected fault explains`, detail: bad.slice(0, 10).map((e) => e.line) }];
    });
  }
  run('daemon.alive', undefined, () => ctx.unexpectedExits.map((e) => ({ check: '', host: e.host, message: `daemon exited by itself (${e.exit})`, detail: e.logTail.split('\n').slice(-15) })));

  return { passed, violations };
}

/**
 * What must not change between two looks for the system to count as settled: statuses, ledgers, kernel
 * tables, addresses, sync daemons, daemon health and VRRP views (not Events, not clocks).
 */
export function fingerprint(obs: Observation): string {
  const pick = <T>(r: Read<T>) => (r.ok ? r.value : { error: r.error.replace(/\d+ms|\d{10,}/g, '') });
  return JSON.stringify({
    services: obs.services.ok
      ? obs.services.value.map((s) => [s.metadata.uid, s.metadata.annotations ?? {}, s.spec.ports ?? [], s.spec.loadBalancerIP ?? '', s.status?.loadBalancer?.ingress ?? []]).sort()
      : pick(obs.services),
    nodes: obs.nodes.ok ? obs.nodes.value.map((n) => [n.metadata.name, n.status?.conditions?.find((c) => c.type === 'Ready')?.status]) : pick(obs.nodes),
    hosts: obs.hosts.map((h) => ({
      host: h.host, ipvs: pick(h.ipvs), addresses: pick(h.addresses), sync: pick(h.sync),
      allocations: h.allocations.ok ? h.allocations.value.map(rowId).sort() : pick(h.allocations),
      health: pick(h.health), vrrp: h.vrrp.ok ? h.vrrp.value.map((g) => [g.name, g.state, g.vips]) : pick(h.vrrp),
    })),
  });
}
