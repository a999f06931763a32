// keepalived.conf from the validated config. Pure and deterministic: the same VrrpConfig and options give the
// same bytes, so the caller can compare with the file on disk and skip a reload when nothing changed. Groups,
// peers and tracked interfaces are sorted because their order carries no meaning and a reordered YAML list
// must not cause a reload.
//
// keepalived elects; it never holds a Service VIP (docs/vrrp.md, "Who holds the VIPs"). keepalived 2.2.7
// refuses a VRRPv3 instance without any virtual_ipaddress ("No VIP specified; at least one is required";
// `no_virtual_ipaddress` only arrived in 2.2.8), so each instance carries one *marker* address of its own:
// a link-local /32 (or an IPv6 link-local /128) derived from the virtual router id. It is what the adverts
// list, it carries no traffic, and it lets a packet capture show which host is master of which group.
import { dirname, join } from 'node:path';
import { isIP } from 'node:net';
import type { VrrpConfig, VrrpGroupConfig } from '../config/types.js';
import { safe, safeInt, safeIp, safeSeconds } from './safe.js';

/** Files that live next to keepalived.conf (its directory is the daemon's runtime directory). */
export interface KeepalivedPaths {
  config: string;
  fifo: string;
  pid: string;
  vrrpPid: string;
  checkerPid: string;
  /** The daemon's own pid file, read by the `pidfile` daemon tracker. */
  daemonPid: string;
}

export function keepalivedPaths(configPath: string): KeepalivedPaths {
  const dir = dirname(configPath);
  return {
    config: configPath,
    fifo: join(dir, 'keepalived.fifo'),
    pid: join(dir, 'keepalived.pid'),
    vrrpPid: join(dir, 'keepalived-vrrp.pid'),
    checkerPid: join(dir, 'keepalived-checkers.pid'),
    daemonPid: join(dir, 'ipvs-lb.pid'),
  };
}

/**
 * How keepalived notices that the ipvs-lb daemon is gone, so the instance drops to FAULT and the peer takes
 * over. `process` is keepalived's track_process (cheap: the kernel's process-events connector). That
 * connector exists only in the initial network namespace, so a daemon running inside another namespace
 * (the lab's LB "hosts") uses `pidfile`: a vrrp_script running `pgrep -F PIDFILE NAME` every interval.
 */
export type DaemonTracking =
  | { kind: 'process'; processName: string }
  | { kind: 'pidfile'; processName: string; pidFile: string; pgrepPath: string; intervalSeconds: number }
  | { kind: 'none' };

export interface RenderOptions {
  fifoPath: string;
  tracking: DaemonTracking;
  /** Scripts (only the pidfile tracker) run as this user; keepalived refuses root scripts in writable paths. */
  scriptUser: string;
}

export const DAEMON_PROCESS_NAME = 'ipvs-lb';
export const TRACKER_NAME = 'ipvs_lb_daemon';

/** The address an instance advertises (see the header). Same family as the instance's peers. */
export function markerAddress(group: Pick<VrrpGroupConfig, 'virtualRouterId' | 'peers' | 'unicastSourceIp'>): string {
  const v6 = [group.unicastSourceIp, ...group.peers].some((a) => a !== undefined && isIP(a) === 6);
  return v6 ? `fe80::5e:${group.virtualRouterId.toString(16)}/128` : `169.254.255.${group.virtualRouterId}/32`;
}

function renderGroup(g: VrrpGroupConfig, index: number, tracking: DaemonTracking): string[] {
  const at = (f: string) => `vrrp.groups[${index}].${f}`;
  const name = safe('groupName', at('name'), g.name);
  const iface = safe('interface', at('interface'), g.interface);
  const vrid = safeInt(at('virtualRouterId'), g.virtualRouterId, 1, 255);
  const out = [
    `vrrp_instance ${name} {`,
    // Every host starts as BACKUP; priorities (and nopreempt) decide who becomes master.
    '  state BACKUP',
    `  interface ${iface}`,
    `  virtual_router_id ${vrid}`,
    `  priority ${safeInt(at('priority'), g.priority, 1, 254)}`,
    `  advert_int ${safeSeconds(at('advertIntervalSeconds'), g.advertIntervalSeconds, 0.01, 40.95, 2)}`,
  ];
  if (g.preempt) {
    const delay = safeInt(at('preemptDelaySeconds'), g.preemptDelaySeconds, 0, 1000);
    if (delay > 0) out.push(`  preempt_delay ${delay}`);
  } else {
    out.push('  nopreempt');
  }
  if (g.peers.length > 0) {
    if (g.unicastSourceIp !== undefined) out.push(`  unicast_src_ip ${safeIp(at('unicastSourceIp'), g.unicastSourceIp)}`);
    out.push('  unicast_peer {');
    const peers = g.peers.map((p, i) => safeIp(`${at('peers')}[${i}]`, p));
    for (const p of [...peers].sort()) out.push(`    ${p}`);
    out.push('  }');
  }
  // keepalived always tracks the instance's own interface and refuses to list it again ("Ignoring
  // track_interface eth0 since own interface" fails `keepalived -t`).
  const tracked = g.trackInterfaces.map((t, i) => safe('interface', `${at('trackInterfaces')}[${i}]`, t)).filter((t) => t !== iface);
  if (tracked.length > 0) {
    out.push('  track_interface {');
    for (const t of [...new Set(tracked)].sort()) out.push(`    ${t}`);
    out.push('  }');
  }
  if (tracking.kind === 'process') out.push('  track_process {', `    ${TRACKER_NAME}`, '  }');
  if (tracking.kind === 'pidfile') out.push('  track_script {', `    ${TRACKER_NAME}`, '  }');
  out.push(
    '  virtual_ipaddress {',
    `    ${markerAddress(g)} dev ${iface}${markerAddress(g).includes(':') ? '' : ' scope link'}`,
    '  }',
    '}',
  );
  return out;
}

function renderTracker(tracking: DaemonTracking, advertSeconds: number): string[] {
  if (tracking.kind === 'none') return [];
  const name = safe('processName', 'tracking.processName', tracking.processName);
  if (tracking.kind === 'process') {
    // weight 0: a missing daemon puts every instance in FAULT instead of lowering its priority, so the host
    // gives up its groups whatever the priorities are. The delay rides out nothing: a dead daemon cannot
    // release its VIPs, so the peer must take over now.
    return [`vrrp_track_process ${TRACKER_NAME} {`, `  process ${name}`, '  quorum 1', '  weight 0', '}', ''];
  }
  const pgrep = safe('path', 'tracking.pgrepPath', tracking.pgrepPath);
  const pidFile = safe('path', 'tracking.pidFile', tracking.pidFile);
  const interval = Math.max(1, Math.ceil(tracking.intervalSeconds));
  // A dead daemon makes pgrep fail at once, so detection takes `fall` intervals whatever the timeout. On a
  // loaded host a live daemon's pgrep (a fork of keepalived, then /proc scans) can take seconds: the soak
  // saw "VRRP_Script(ipvs_lb_daemon) timed_out" flap both groups MASTER → FAULT every few seconds at a load
  // of 12 on two cores with a 1 s timeout, and still now and then with 3 s. keepalived counts a timed-out
  // run as down at once (fall does not apply to it), so only a generous timeout rides that out; fall 2
  // covers a run that fails for another passing reason.
  return [
    `vrrp_script ${TRACKER_NAME} {`,
    `  script "${pgrep} -F ${pidFile} ${name}"`,
    `  interval ${safeInt('tracking.intervalSeconds', interval, 1, 60)}`,
    `  timeout ${safeSeconds('tracking.timeout', Math.max(advertSeconds, 10), 0.01, 60, 2)}`,
    '  fall 2',
    '  rise 1',
    '  weight 0',
    '}',
    '',
  ];
}

export function renderKeepalivedConf(vrrp: VrrpConfig, opts: RenderOptions): string {
  const routerId = safe('routerId', 'vrrp.routerId', vrrp.routerId);
  const fifo = safe('path', 'vrrp.notifyFifo', opts.fifoPath);
  const user = safe('userName', 'scriptUser', opts.scriptUser);
  const garpRepeat = safeInt('vrrp.garpRepeat', vrrp.garpRepeat, 0, 100);
  const garpInterval = safeSeconds('vrrp.garpIntervalMs', vrrp.garpIntervalMs / 1000, 0, 10, 3);
  const groups = vrrp.groups.map((g, i) => ({ g, i })).sort((a, b) => (a.g.name < b.g.name ? -1 : a.g.name > b.g.name ? 1 : 0));
  const lines = [
    '# Rendered by ipvs-lb from its own configuration; changes here are overwritten. See docs/vrrp.md.',
    'global_defs {',
    `  router_id ${routerId}`,
    '  vrrp_version 3',
    `  script_user ${user}`,
    '  enable_script_security',
    `  notify_fifo ${fifo}`,
    // These apply to the marker addresses only; the daemon sends GARP/NA for the Service VIPs itself.
    `  vrrp_garp_master_repeat ${Math.max(1, garpRepeat)}`,
    '  vrrp_garp_master_delay 0',
    // keepalived refuses an interval of 0 (its range starts at 1 µs); 0 means its default: no spacing.
    ...(garpInterval === '0' ? [] : [`  vrrp_garp_interval ${garpInterval}`, `  vrrp_gna_interval ${garpInterval}`]),
    '}',
    '',
    ...renderTracker(opts.tracking, Math.min(...vrrp.groups.map((g) => g.advertIntervalSeconds), 1)),
  ];
  for (const { g, i } of groups) lines.push(...renderGroup(g, i, opts.tracking), '');
  return lines.join('\n');
}
