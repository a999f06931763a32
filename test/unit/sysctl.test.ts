// The host sysctl checks as pure functions: what a configuration needs, what counts as wrong, what the daemon
// may fix by itself and what it must leave to the operator.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfigText } from '../../src/config/load.js';
import { checkSysctls, describeFinding, sysctlKey, sysctlKeys, sysctlNeeds, sysctlPath, type SysctlNeeds } from '../../src/sysctl/index.js';

const good: Record<string, string> = {
  'net.ipv4.vs.expire_nodest_conn': '1',
  'net.ipv4.vs.expire_quiescent_template': '1',
  'net.ipv4.vs.conntrack': '1',
  'net.ipv4.ip_forward': '1',
  'net.ipv6.conf.all.forwarding': '1',
  'net.ipv4.conf.all.arp_ignore': '1',
  'net.ipv4.conf.eth0.arp_ignore': '0',
  'net.ipv4.conf.all.arp_announce': '2',
  'net.ipv4.conf.eth0.arp_announce': '0',
  'net.ipv4.conf.all.rp_filter': '0',
  'net.ipv4.conf.eth0.rp_filter': '2',
  'net.ipv6.conf.eth0.disable_ipv6': '0',
};
const values = (over: Record<string, string | undefined> = {}) => new Map(Object.entries({ ...good, ...over }));
const needs = (forwarding: Array<'dr' | 'tun' | 'nat'> = ['dr'], families: Array<4 | 6> = [4]): SysctlNeeds => ({ interface: 'eth0', forwarding: new Set(forwarding), families: new Set(families) });
const find = (fs: ReturnType<typeof checkSysctls>, key: string) => {
  const f = fs.find((x) => x.key === key);
  assert.ok(f, `no finding for ${key}: ${fs.map((x) => x.key).join(', ')}`);
  return f;
};

describe('host sysctl checks', () => {
  it('a host set up like the ansible role passes every check, for every feature', () => {
    const fs = checkSysctls(needs(['dr', 'tun', 'nat'], [4, 6]), values());
    assert.deepEqual(fs.filter((f) => !f.ok).map(describeFinding), []);
    assert.equal(fs.length, 9);
  });

  it('checks conntrack and forwarding only when NAT is in use, and IPv6 settings only with IPv6 VIPs', () => {
    const dr = sysctlKeys(needs(['dr', 'tun']));
    assert.ok(!dr.includes('net.ipv4.vs.conntrack') && !dr.includes('net.ipv4.ip_forward') && !dr.some((k) => k.startsWith('net.ipv6')));
    const nat6 = sysctlKeys(needs(['nat'], [6]));
    assert.ok(nat6.includes('net.ipv4.vs.conntrack') && nat6.includes('net.ipv6.conf.all.forwarding') && nat6.includes('net.ipv6.conf.eth0.disable_ipv6'));
    assert.ok(!nat6.includes('net.ipv4.ip_forward') && !nat6.some((k) => k.includes('arp_')), 'IPv4 ARP settings do not matter for IPv6-only VIPs');
  });

  it('NAT without ip_forward is an error the daemon may fix; IPv6 forwarding is left to the operator', () => {
    const fs = checkSysctls(needs(['nat'], [4, 6]), values({ 'net.ipv4.ip_forward': '0', 'net.ipv6.conf.all.forwarding': '0', 'net.ipv4.vs.conntrack': '0' }));
    const fwd = find(fs, 'net.ipv4.ip_forward');
    assert.deepEqual([fwd.ok, fwd.severity, fwd.actual, fwd.fix], [false, 'error', '0', { key: 'net.ipv4.ip_forward', value: '1' }]);
    const fwd6 = find(fs, 'net.ipv6.conf.all.forwarding');
    assert.deepEqual([fwd6.ok, fwd6.severity, fwd6.fix], [false, 'error', undefined]);
    assert.match(fwd6.advice!, /router advertisements/);
    assert.deepEqual([find(fs, 'net.ipv4.vs.conntrack').severity, find(fs, 'net.ipv4.vs.conntrack').fix?.value], ['warning', '1']);
    assert.deepEqual(fs.slice(0, 2).map((f) => f.severity), ['error', 'error'], 'errors come first');
  });

  it('ARP and rp_filter: the larger of conf/all and conf/IFACE is what applies', () => {
    let fs = checkSysctls(needs(), values({ 'net.ipv4.conf.all.arp_ignore': '0', 'net.ipv4.conf.eth0.arp_ignore': '0' }));
    let ig = find(fs, 'net.ipv4.conf.eth0.arp_ignore');
    assert.deepEqual([ig.ok, ig.actual, ig.severity, ig.fix], [false, '0', 'warning', { key: 'net.ipv4.conf.eth0.arp_ignore', value: '1' }]);
    // 2 never answers for a /32 VIP; set on "all" it cannot be fixed on the interface.
    fs = checkSysctls(needs(), values({ 'net.ipv4.conf.all.arp_ignore': '2' }));
    ig = find(fs, 'net.ipv4.conf.eth0.arp_ignore');
    assert.deepEqual([ig.ok, ig.actual, ig.severity, ig.fix], [false, '2', 'error', undefined]);
    assert.match(ig.advice!, /net\.ipv4\.conf\.all\.arp_ignore is 2/);
    fs = checkSysctls(needs(), values({ 'net.ipv4.conf.eth0.arp_ignore': '8' }));
    assert.deepEqual(find(fs, 'net.ipv4.conf.eth0.arp_ignore').fix, { key: 'net.ipv4.conf.eth0.arp_ignore', value: '1' });
    fs = checkSysctls(needs(), values({ 'net.ipv4.conf.all.arp_announce': '0' }));
    assert.deepEqual(find(fs, 'net.ipv4.conf.eth0.arp_announce').fix, { key: 'net.ipv4.conf.eth0.arp_announce', value: '2' });
    fs = checkSysctls(needs(), values({ 'net.ipv4.conf.all.rp_filter': '1', 'net.ipv4.conf.eth0.rp_filter': '0' }));
    const rp = find(fs, 'net.ipv4.conf.eth0.rp_filter');
    assert.deepEqual([rp.ok, rp.actual, rp.severity, rp.fix], [false, '1', 'warning', { key: 'net.ipv4.conf.eth0.rp_filter', value: '2' }]);
    assert.ok(find(checkSysctls(needs(), values({ 'net.ipv4.conf.all.rp_filter': '2', 'net.ipv4.conf.eth0.rp_filter': '1' })), 'net.ipv4.conf.eth0.rp_filter').ok, 'loose on all overrides strict on the interface');
  });

  it('a missing setting says why and is never "fixed" by writing', () => {
    const fs = checkSysctls(needs(), values({ 'net.ipv4.vs.expire_nodest_conn': undefined, 'net.ipv4.conf.eth0.rp_filter': undefined }));
    const nodest = find(fs, 'net.ipv4.vs.expire_nodest_conn');
    assert.deepEqual([nodest.ok, nodest.actual, nodest.fix], [false, undefined, undefined]);
    assert.match(nodest.advice!, /ip_vs module is not loaded/);
    const rp = find(fs, 'net.ipv4.conf.eth0.rp_filter');
    assert.deepEqual([rp.ok, rp.fix], [false, undefined]);
    assert.match(rp.advice!, /interface eth0 does not exist/);
    assert.match(describeFinding(nodest), /^sysctl net\.ipv4\.vs\.expire_nodest_conn is missing, want 1 \(warning\): connections to a node/);
  });

  it('names VLAN interfaces the way sysctl(8) does and maps them back to /proc/sys paths', () => {
    assert.equal(sysctlKey('net', 'ipv4', 'conf', 'eth0.100', 'rp_filter'), 'net.ipv4.conf.eth0/100.rp_filter');
    assert.equal(sysctlPath('net.ipv4.conf.eth0/100.rp_filter'), 'net/ipv4/conf/eth0.100/rp_filter');
    const keys = sysctlKeys({ ...needs(), interface: 'eth0.100' });
    assert.ok(keys.includes('net.ipv4.conf.eth0/100.arp_ignore'));
  });

  it('derives the needs from the configuration and from what Services chose by annotation', () => {
    const r = parseConfigText(`interface: bond0
vrrp: {enabled: false}
pools:
  - {name: a, addresses: [192.0.2.0/24]}
  - {name: b, addresses: ['2001:db8::/64'], forwarding: tun}
`, 'test');
    assert.ok(r.ok);
    const n = sysctlNeeds(r.config);
    assert.deepEqual([n.interface, [...n.forwarding].sort(), [...n.families].sort()], ['bond0', ['dr', 'tun'], [4, 6]]);
    assert.ok(sysctlNeeds(r.config, ['nat']).forwarding.has('nat'));
  });
});
