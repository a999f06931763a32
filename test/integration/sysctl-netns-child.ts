// Runs inside `unshare -n -m` (fresh network and mount namespaces of its own, gone when this exits): sets the VIP
// interface's settings the wrong way with sysctl(8), then lets the daemon's sysctl adapter check and fix them,
// and prints what sysctl(8) reads afterwards. This host's kernel has no IPVS, so the net.ipv4.vs.* settings
// are missing, which the checks must report and never try to write.
import { execFileSync } from 'node:child_process';
import { reconcileHostSysctls, type SysctlNeeds } from '../../src/sysctl/index.js';

const sh = (...a: string[]) => execFileSync(a[0]!, a.slice(1), { encoding: 'utf8' }).trim();
sh('ip', 'link', 'add', 'lbvip0', 'type', 'veth', 'peer', 'name', 'lbvip1');
for (const kv of ['net.ipv4.conf.all.arp_ignore=0', 'net.ipv4.conf.lbvip0.arp_ignore=0', 'net.ipv4.conf.all.arp_announce=0', 'net.ipv4.conf.all.rp_filter=1', 'net.ipv4.conf.lbvip0.rp_filter=1', 'net.ipv4.ip_forward=0']) {
  sh('sysctl', '-q', '-w', kv);
}
const watched = ['net.ipv4.conf.lbvip0.arp_ignore', 'net.ipv4.conf.lbvip0.arp_announce', 'net.ipv4.conf.lbvip0.rp_filter', 'net.ipv4.conf.all.rp_filter', 'net.ipv4.ip_forward'];
const read = () => Object.fromEntries(watched.map((k) => [k, sh('sysctl', '-n', k)]));
const needs: SysctlNeeds = { interface: 'lbvip0', forwarding: new Set(['dr', 'nat']), families: new Set([4]) };

const checkOnly = reconcileHostSysctls(needs, { manage: false });
const afterCheck = read();
const managed = reconcileHostSysctls(needs, { manage: true });
const afterManage = read();

// A read-only /proc/sys, made the way systemd's ProtectKernelTunables=yes makes it (a read-only bind mount,
// in this child's own mount namespace): the failure must be reported, not thrown.
sh('sysctl', '-q', '-w', 'net.ipv4.ip_forward=0');
sh('mount', '--bind', '/proc/sys', '/proc/sys');
sh('mount', '-o', 'remount,bind,ro', '/proc/sys');
const readOnly = reconcileHostSysctls(needs, { manage: true });

process.stdout.write(`${JSON.stringify({ checkOnly, afterCheck, managed, afterManage, readOnly })}\n`);
