// The LB host's kernel settings that decide whether the data plane works as designed, as pure functions:
// which settings matter for a configuration (sysctlNeeds, sysctlKeys) and what is wrong with a set of values
// read from /proc/sys (checkSysctls). host.ts reads and writes the values; the daemon reports the findings
// and changes only what `sysctl.manage` allows; `doctor` can reuse both.
// The values follow docs/operations.md ("Kernel settings"), which the ansible role writes to
// /etc/sysctl.d/90-ipvs-lb.conf, plus rp_filter and IPv6 on the VIP interface.
import type { Config, Forwarding } from '../config/types.js';
import type { Family } from '../ipam/address.js';

export interface SysctlNeeds {
  /** The interface that carries the VIPs. */
  interface: string;
  /** Forwarding methods in use: the configured defaults and pools, plus what Services chose by annotation. */
  forwarding: ReadonlySet<Forwarding>;
  /** Address families of the VIPs. */
  families: ReadonlySet<Family>;
}

export type SysctlSeverity = 'error' | 'warning';

export interface SysctlFinding {
  /** sysctl(8) name of the setting that decides, e.g. `net.ipv4.vs.expire_nodest_conn`,
   * `net.ipv4.conf.eth0/100.rp_filter` (a dot inside an interface name is written as "/", as sysctl does). */
  key: string;
  /** What is wanted, in words: `1`, `0 or 2`. */
  want: string;
  /** The value in effect (for conf/all + conf/IFACE pairs, the larger one, which the kernel applies);
   * undefined when it could not be read. */
  actual: string | undefined;
  ok: boolean;
  /** error: a feature in use does not work as designed; warning: it works, with a documented risk. */
  severity: SysctlSeverity;
  why: string;
  /** What the daemon writes to fix it when `sysctl.manage` is on; undefined when it must be fixed by hand. */
  fix: { key: string; value: string } | undefined;
  /** For a finding that is not ok: what to do about it. */
  advice: string | undefined;
}

/** A sysctl(8) name from path segments: dots inside a segment (VLAN interfaces) become "/". */
export function sysctlKey(...segments: string[]): string {
  return segments.map((s) => s.replace(/\./g, '/')).join('.');
}

/** The path under /proc/sys of a sysctl(8) name. */
export function sysctlPath(key: string): string {
  return key.split('.').map((s) => s.replace(/\//g, '.')).join('/');
}

/** What a configuration (and optionally the forwarding the desired state uses) needs of the host. */
export function sysctlNeeds(config: Pick<Config, 'interface' | 'forwarding' | 'pools'>, desiredForwarding: Iterable<Forwarding> = []): SysctlNeeds {
  const forwarding = new Set<Forwarding>([config.forwarding, ...desiredForwarding]);
  const families = new Set<Family>();
  for (const p of config.pools) {
    if (p.forwarding) forwarding.add(p.forwarding);
    for (const r of p.addresses) families.add(r.family);
  }
  return { interface: config.interface, forwarding, families };
}

const ipv4conf = (iface: string, name: string) => sysctlKey('net', 'ipv4', 'conf', iface, name);
const ALL = 'all';

/** Every key checkSysctls reads for these needs. */
export function sysctlKeys(needs: SysctlNeeds): string[] {
  const keys = ['net.ipv4.vs.expire_nodest_conn', 'net.ipv4.vs.expire_quiescent_template'];
  if (needs.forwarding.has('nat')) {
    keys.push('net.ipv4.vs.conntrack');
    if (needs.families.has(4)) keys.push('net.ipv4.ip_forward');
    if (needs.families.has(6)) keys.push('net.ipv6.conf.all.forwarding');
  }
  if (needs.families.has(4)) {
    for (const name of ['arp_ignore', 'arp_announce', 'rp_filter']) keys.push(ipv4conf(ALL, name), ipv4conf(needs.interface, name));
  }
  if (needs.families.has(6)) keys.push(sysctlKey('net', 'ipv6', 'conf', needs.interface, 'disable_ipv6'));
  return keys;
}

type Values = ReadonlyMap<string, string | undefined>;

const asInt = (v: string | undefined): number | undefined => (v !== undefined && /^-?\d+$/.test(v.trim()) ? Number(v.trim()) : undefined);

function missingAdvice(key: string, iface: string): string {
  if (key.startsWith('net.ipv4.vs.')) return 'the ip_vs module is not loaded (the setting appears with it)';
  if (key.includes(`.conf.${sysctlKey(iface)}.`)) return `interface ${iface} does not exist in this network namespace`;
  return 'the setting does not exist on this kernel';
}

interface Simple {
  key: string;
  want: number;
  severity: SysctlSeverity;
  why: string;
  /** Why the daemon does not change it itself, if it does not. */
  byHand?: string;
}

function simple(values: Values, iface: string, s: Simple): SysctlFinding {
  const raw = values.get(s.key);
  const v = asInt(raw);
  const ok = v === s.want;
  const fix = s.byHand ? undefined : { key: s.key, value: String(s.want) };
  let advice: string | undefined;
  if (!ok) {
    advice = raw === undefined ? missingAdvice(s.key, iface) : s.byHand ? `set ${s.key} = ${s.want} in /etc/sysctl.d (${s.byHand})` : `set ${s.key} = ${s.want} (sysctl.manage: true lets the daemon do it; the ansible role writes /etc/sysctl.d/90-ipvs-lb.conf)`;
  }
  return { key: s.key, want: String(s.want), actual: raw?.trim(), ok, severity: s.severity, why: s.why, fix: raw === undefined ? undefined : fix, advice };
}

/** conf/all and conf/IFACE pairs where the kernel applies the larger of the two. */
function effective(values: Values, iface: string, name: string): { all: number | undefined; dev: number | undefined; value: number | undefined; raw: string | undefined } {
  const all = asInt(values.get(ipv4conf(ALL, name)));
  const dev = asInt(values.get(ipv4conf(iface, name)));
  const value = all === undefined || dev === undefined ? undefined : Math.max(all, dev);
  return { all, dev, value, raw: value === undefined ? undefined : String(value) };
}

/** The findings for these needs from the values read (a missing key: undefined). Pure; sorted errors first. */
export function checkSysctls(needs: SysctlNeeds, values: Values): SysctlFinding[] {
  const iface = needs.interface;
  const out: SysctlFinding[] = [];
  out.push(simple(values, iface, {
    key: 'net.ipv4.vs.expire_nodest_conn', want: 1, severity: 'warning',
    why: 'connections to a node that was removed are dropped at their next packet, so clients reconnect to a live node instead of hanging until the connection times out',
  }));
  out.push(simple(values, iface, {
    key: 'net.ipv4.vs.expire_quiescent_template', want: 1, severity: 'warning',
    why: 'with sessionAffinity: ClientIP (persistence), clients stop being pinned to a node drained to weight 0',
  }));
  if (needs.forwarding.has('nat')) {
    out.push(simple(values, iface, {
      key: 'net.ipv4.vs.conntrack', want: 1, severity: 'warning',
      why: 'NAT forwarding: IPVS keeps netfilter connection tracking entries, so stateful firewall or NAT rules on this host do not drop the nodes\' replies',
    }));
    if (needs.families.has(4)) {
      out.push(simple(values, iface, {
        key: 'net.ipv4.ip_forward', want: 1, severity: 'error',
        why: 'NAT forwarding: the nodes\' replies come back through this host and must be forwarded to the clients',
      }));
    }
    if (needs.families.has(6)) {
      out.push(simple(values, iface, {
        key: 'net.ipv6.conf.all.forwarding', want: 1, severity: 'error',
        why: 'NAT forwarding of IPv6 VIPs: the nodes\' replies come back through this host and must be forwarded',
        byHand: 'it also stops the host from accepting router advertisements unless accept_ra is 2, so the daemon never changes it',
      }));
    }
  }
  if (needs.families.has(4)) {
    const devKey = (name: string) => ipv4conf(iface, name);
    const allKey = (name: string) => ipv4conf(ALL, name);

    const ig = effective(values, iface, 'arp_ignore');
    // 2 answers only senders in the address's own subnet, which for a /32 VIP is nobody; 4-8 never answer.
    const igSeverity: SysctlSeverity = ig.value === 0 || ig.value === 3 ? 'warning' : 'error';
    out.push({
      key: devKey('arp_ignore'), want: '1', actual: ig.raw, ok: ig.value === 1, severity: ig.value === undefined ? 'warning' : igSeverity,
      why: `the larger of ${allKey('arp_ignore')} and ${devKey('arp_ignore')} applies: 1 answers ARP for a VIP only on the interface that holds it; 2 and above would not answer for a /32 VIP at all`,
      fix: ig.all !== undefined && ig.all <= 1 && ig.value !== 1 ? { key: devKey('arp_ignore'), value: '1' } : undefined,
      advice: ig.value === 1 ? undefined : ig.value === undefined ? missingAdvice(devKey('arp_ignore'), iface)
        : ig.all !== undefined && ig.all > 1 ? `${allKey('arp_ignore')} is ${ig.all}, which overrides the interface; set it to 1 in /etc/sysctl.d (the daemon does not change settings of every interface)`
          : `set ${devKey('arp_ignore')} = 1 (or ${allKey('arp_ignore')} = 1, as the ansible role does)`,
    });

    const an = effective(values, iface, 'arp_announce');
    out.push({
      key: devKey('arp_announce'), want: '2', actual: an.raw, ok: an.value === 2, severity: 'warning',
      why: `the larger of ${allKey('arp_announce')} and ${devKey('arp_announce')} applies: 2 never uses a VIP as the source of this host's own ARP requests, so neighbours do not keep a stale MAC for a VIP after a failover`,
      fix: an.value !== undefined && an.value !== 2 ? { key: devKey('arp_announce'), value: '2' } : undefined,
      advice: an.value === 2 ? undefined : an.value === undefined ? missingAdvice(devKey('arp_announce'), iface) : `set ${devKey('arp_announce')} = 2 (or ${allKey('arp_announce')} = 2, as the ansible role does)`,
    });

    const rp = effective(values, iface, 'rp_filter');
    out.push({
      key: devKey('rp_filter'), want: '0 or 2', actual: rp.raw, ok: rp.value === 0 || rp.value === 2, severity: 'warning',
      why: `the larger of ${allKey('rp_filter')} and ${devKey('rp_filter')} applies: strict reverse-path filtering (1) drops VIP traffic from clients whose route back leaves by another interface; loose (2) does not`,
      fix: rp.value === 1 ? { key: devKey('rp_filter'), value: '2' } : undefined,
      advice: rp.value === 0 || rp.value === 2 ? undefined : rp.value === undefined ? missingAdvice(devKey('rp_filter'), iface) : `set ${devKey('rp_filter')} = 2 (loose)`,
    });
  }
  if (needs.families.has(6)) {
    out.push(simple(values, iface, {
      key: sysctlKey('net', 'ipv6', 'conf', iface, 'disable_ipv6'), want: 0, severity: 'error',
      why: 'IPv6 VIPs are bound on this interface',
    }));
  }
  const rank = (f: SysctlFinding) => (f.ok ? 2 : f.severity === 'error' ? 0 : 1);
  return out.map((f, i) => ({ f, i })).sort((a, b) => rank(a.f) - rank(b.f) || a.i - b.i).map((x) => x.f);
}

/** One line per finding that is not ok, for health messages and logs. */
export function describeFinding(f: SysctlFinding): string {
  const got = f.actual === undefined ? 'missing' : f.actual;
  return `sysctl ${f.key} is ${got}, want ${f.want} (${f.severity}): ${f.why}${f.advice ? `; ${f.advice}` : ''}`;
}
