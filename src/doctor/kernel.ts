// Pure verdicts on the host: which kernel modules, sysctls and helper programs this config needs, and what
// doctor says about what it found.
import type { Config, Forwarding } from '../config/types.js';
import type { CommandProbe, ModuleState } from './host.js';
import { check, type CheckResult } from './types.js';

const uses = (c: Config, f: Forwarding) => c.forwarding === f || c.pools.some((p) => p.forwarding === f);

export interface ModuleNeed {
  name: string;
  why: string;
}

export function requiredModules(c: Config): ModuleNeed[] {
  const needs: ModuleNeed[] = [{ name: 'ip_vs', why: 'IPVS' }];
  const schedulers = [...new Set([c.scheduler, ...c.pools.map((p) => p.scheduler).filter((s) => s !== undefined)])].sort();
  for (const s of schedulers) needs.push({ name: `ip_vs_${s}`, why: s === c.scheduler ? `the default scheduler ${s}` : `the scheduler ${s} of a pool` });
  if (uses(c, 'tun')) needs.push({ name: 'ipip', why: 'tunnel forwarding' });
  if (uses(c, 'nat')) needs.push({ name: 'nf_conntrack', why: 'NAT forwarding' });
  return needs;
}

export function moduleCheck(m: ModuleNeed, state: ModuleState | undefined, release: string): CheckResult {
  switch (state) {
    case 'loaded':
    case 'builtin':
      return check('kernel', m.name, 'ok', `${state} (for ${m.why})`);
    case 'available':
      return check('kernel', m.name, 'warn', `not loaded; the kernel loads it on first use, but load it at boot: add it to /etc/modules-load.d/ipvs-lb.conf (the ansible role does); needed for ${m.why}`);
    default:
      return check('kernel', m.name, 'fail', `not in this kernel (${release}): not loaded, not built in, not in modules.dep; needed for ${m.why}`);
  }
}

export interface SysctlRule {
  key: string;
  /** Minimum value; the ARP ones count the larger of `all` and the VIP interface, as the kernel does. */
  min: number;
  perInterface?: boolean;
  severity: 'warn' | 'fail';
  why: string;
}

/** The settings docs/operations.md lists (and the ansible role writes to /etc/sysctl.d/90-ipvs-lb.conf). */
export function requiredSysctls(c: Config): SysctlRule[] {
  const rules: SysctlRule[] = [
    { key: 'net.ipv4.vs.expire_nodest_conn', min: 1, severity: 'warn', why: 'connections to a removed node are dropped at once, so clients reconnect to a live one' },
    { key: 'net.ipv4.vs.expire_quiescent_template', min: 1, severity: 'warn', why: 'persistent clients stop being pinned to a node drained to weight 0' },
    { key: 'net.ipv4.conf.all.arp_ignore', min: 1, perInterface: true, severity: 'warn', why: 'answer ARP for a VIP only on the interface that holds it' },
    { key: 'net.ipv4.conf.all.arp_announce', min: 2, perInterface: true, severity: 'warn', why: 'never use a VIP as the source of this host\'s ARP requests' },
  ];
  if (uses(c, 'nat')) {
    rules.push({ key: 'net.ipv4.vs.conntrack', min: 1, severity: 'fail', why: 'NAT forwarding: IPVS needs conntrack to un-NAT the replies' });
    rules.push({ key: 'net.ipv4.ip_forward', min: 1, severity: 'fail', why: 'NAT forwarding: replies are routed back through this host' });
  }
  return rules;
}

/** The per-interface twin of a `conf.all` key, e.g. net.ipv4.conf.eth0.arp_ignore. */
export const interfaceKey = (rule: SysctlRule, iface: string) => rule.key.replace('.conf.all.', `.conf.${iface}.`);

export function sysctlCheck(rule: SysctlRule, all: string | undefined, ifaceValue: string | undefined, iface: string): CheckResult {
  if (all === undefined) {
    return rule.key.startsWith('net.ipv4.vs.')
      ? check('sysctl', rule.key, 'skip', 'absent: the ip_vs module is not loaded in this network namespace')
      : check('sysctl', rule.key, rule.severity, 'absent from /proc/sys');
  }
  const values = [Number(all), ...(rule.perInterface && ifaceValue !== undefined ? [Number(ifaceValue)] : [])];
  if (values.some((v) => !Number.isInteger(v))) return check('sysctl', rule.key, rule.severity, `unexpected value ${JSON.stringify(all)}`);
  const effective = Math.max(...values);
  const shown = rule.perInterface && ifaceValue !== undefined ? `${all} (${iface}: ${ifaceValue})` : all;
  if (effective >= rule.min) return check('sysctl', rule.key, 'ok', `${shown}`);
  return check('sysctl', rule.key, rule.severity, `is ${shown}, want ${rule.min}${rule.min > 0 && rule.key.includes('arp_') ? ' or more' : ''}: ${rule.why} (sysctl -w ${rule.key}=${rule.min}; persist it in /etc/sysctl.d/90-ipvs-lb.conf)`);
}

export function keepalivedCheck(c: Config, probe: CommandProbe | undefined): CheckResult {
  if (!c.vrrp.enabled || !probe) return check('binaries', 'keepalived', 'skip', 'vrrp.enabled is false');
  if (!probe.found) return check('binaries', 'keepalived', 'fail', `${c.vrrp.keepalivedPath} not found (Debian package keepalived; vrrp.keepalivedPath)`);
  const v = /Keepalived v(\S+)/.exec(probe.output);
  if (probe.exitCode !== 0 || !v) return check('binaries', 'keepalived', 'fail', `${c.vrrp.keepalivedPath} --version did not identify keepalived (exit ${probe.exitCode}): ${probe.output.split('\n')[0] ?? ''}`);
  return check('binaries', 'keepalived', 'ok', `${c.vrrp.keepalivedPath}: keepalived ${v[1]}`);
}

export function arpingCheck(c: Config, probe: CommandProbe | undefined): CheckResult {
  if (c.vrrp.garpRepeat === 0 || !probe) return check('binaries', 'arping', 'skip', 'vrrp.garpRepeat is 0: no gratuitous ARP is sent');
  if (!probe.found) return check('binaries', 'arping', 'fail', 'arping not found in PATH (Debian package iputils-arping): VIPs that move are not announced');
  if (!/iputils/.test(probe.output)) return check('binaries', 'arping', 'fail', `arping is not the iputils one (the daemon runs arping -U -c 1 -I IFACE VIP): ${probe.output.split('\n')[0] ?? ''}`);
  return check('binaries', 'arping', 'ok', probe.output.split('\n')[0]!);
}
