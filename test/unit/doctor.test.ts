// Doctor's verdicts: what a config needs from the kernel, how module, sysctl, helper-program and kube-proxy
// findings are judged, read from a prepared /proc, /sys and /lib/modules tree.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { V1Service } from '@kubernetes/client-node';
import { parseConfig } from '../../src/config/schema.js';
import type { Config } from '../../src/config/types.js';
import { hostChecks } from '../../src/doctor/index.js';
import { moduleStates, readSysctl, type HostPaths } from '../../src/doctor/host.js';
import { arpingCheck, keepalivedCheck, requiredModules, requiredSysctls, sysctlCheck } from '../../src/doctor/kernel.js';
import { kubeProxyCheck, proxyModeChecks } from '../../src/doctor/kubernetes.js';

function config(extra: Record<string, unknown> = {}): Config {
  const r = parseConfig({ interface: 'eth0', pools: [{ name: 'p', addresses: ['192.0.2.0/24'] }], vrrp: { enabled: false, garpRepeat: 0 }, ...extra });
  assert.ok(r.ok, !r.ok ? r.problems.join('; ') : '');
  return r.config;
}

const dir = mkdtempSync(join(tmpdir(), 'ipvs-lb-doctor-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function tree(files: Record<string, string>): HostPaths {
  const base = mkdtempSync(join(dir, 'root-'));
  for (const [p, content] of Object.entries(files)) {
    mkdirSync(join(base, p, '..'), { recursive: true });
    if (content === '<dir>') mkdirSync(join(base, p), { recursive: true });
    else writeFileSync(join(base, p), content);
  }
  return { proc: join(base, 'proc'), sys: join(base, 'sys'), modules: join(base, 'lib/modules'), release: '6.1.0-test' };
}

describe('doctor', () => {
  it('needs ip_vs, the schedulers in use, ipip for tunnels and nf_conntrack for NAT', () => {
    assert.deepEqual(requiredModules(config()).map((m) => m.name), ['ip_vs', 'ip_vs_mh']);
    const mixed = config({ scheduler: 'wlc', pools: [{ name: 'a', addresses: ['192.0.2.0/24'], scheduler: 'sh', forwarding: 'tun' }, { name: 'b', addresses: ['198.51.100.0/24'], forwarding: 'nat' }] });
    assert.deepEqual(requiredModules(mixed).map((m) => m.name), ['ip_vs', 'ip_vs_sh', 'ip_vs_wlc', 'ipip', 'nf_conntrack']);
    assert.deepEqual(requiredSysctls(config()).map((r) => r.key), ['net.ipv4.vs.expire_nodest_conn', 'net.ipv4.vs.expire_quiescent_template', 'net.ipv4.conf.all.arp_ignore', 'net.ipv4.conf.all.arp_announce']);
    assert.deepEqual(requiredSysctls(mixed).filter((r) => r.severity === 'fail').map((r) => r.key), ['net.ipv4.vs.conntrack', 'net.ipv4.ip_forward']);
  });

  it('tells loaded, built-in, available and missing modules apart', async () => {
    const p = tree({
      'proc/modules': 'ip_vs 200704 2 ip_vs_rr, Live 0x0000000000000000\nnf_conntrack 180224 1 ip_vs, Live 0x0\n',
      'sys/module/ipip': '<dir>',
      'lib/modules/6.1.0-test/modules.builtin': 'kernel/net/netfilter/ipvs/ip_vs_wlc.ko\n',
      'lib/modules/6.1.0-test/modules.dep': 'kernel/net/netfilter/ipvs/ip_vs_mh.ko.xz: kernel/net/netfilter/ipvs/ip_vs.ko.xz\nkernel/net/netfilter/ipvs/ip_vs.ko.xz: \n',
    });
    const s = await moduleStates(['ip_vs', 'nf_conntrack', 'ipip', 'ip_vs_wlc', 'ip_vs_mh', 'ip_vs_sed'], p);
    assert.deepEqual(Object.fromEntries(s), { ip_vs: 'loaded', nf_conntrack: 'loaded', ipip: 'loaded', ip_vs_wlc: 'builtin', ip_vs_mh: 'available', ip_vs_sed: 'missing' });
    const checks = await hostChecks(config({ scheduler: 'mh' }), p);
    const mh = checks.find((c) => c.name === 'ip_vs_mh')!;
    assert.equal(mh.status, 'warn');
    assert.match(mh.message, /^not loaded; the kernel loads it on first use, but load it at boot/);
    const none = await hostChecks(config({ scheduler: 'sed' }), p);
    assert.deepEqual(none.find((c) => c.name === 'ip_vs_sed'), { group: 'kernel', name: 'ip_vs_sed', status: 'fail', message: 'not in this kernel (6.1.0-test): not loaded, not built in, not in modules.dep; needed for the default scheduler sed' });
  });

  it('reads sysctls from /proc/sys and judges them, counting the VIP interface for the ARP ones', async () => {
    const p = tree({
      'proc/sys/net/ipv4/vs/expire_nodest_conn': '1\n',
      'proc/sys/net/ipv4/vs/expire_quiescent_template': '0\n',
      'proc/sys/net/ipv4/conf/all/arp_ignore': '0\n',
      'proc/sys/net/ipv4/conf/eth0/arp_ignore': '1\n',
      'proc/sys/net/ipv4/conf/all/arp_announce': '1\n',
      'proc/sys/net/ipv4/conf/eth0/arp_announce': '0\n',
    });
    assert.equal(await readSysctl('net.ipv4.vs.expire_nodest_conn', p.proc), '1');
    assert.equal(await readSysctl('net.ipv4.vs.conntrack', p.proc), undefined);
    await assert.rejects(readSysctl('net/../../etc/passwd', p.proc), /not a sysctl key/);
    const checks = Object.fromEntries((await hostChecks(config(), p)).filter((c) => c.group === 'sysctl').map((c) => [c.name, `${c.status} ${c.message}`]));
    assert.equal(checks['net.ipv4.vs.expire_nodest_conn'], 'ok 1');
    assert.match(checks['net.ipv4.vs.expire_quiescent_template']!, /^warn is 0, want 1: persistent clients stop being pinned/);
    assert.equal(checks['net.ipv4.conf.all.arp_ignore'], 'ok 0 (eth0: 1)');
    assert.match(checks['net.ipv4.conf.all.arp_announce']!, /^warn is 1 \(eth0: 0\), want 2 or more/);
    const rule = requiredSysctls(config({ forwarding: 'nat' })).find((r) => r.key === 'net.ipv4.vs.conntrack')!;
    assert.equal(sysctlCheck(rule, undefined, undefined, 'eth0').status, 'skip');
    assert.equal(sysctlCheck(rule, '0', undefined, 'eth0').status, 'fail');
    assert.equal(sysctlCheck(rule, 'x', undefined, 'eth0').message, 'unexpected value "x"');
  });

  it('wants keepalived when VRRP is on and iputils arping when gratuitous ARP is sent', () => {
    const vrrp = config({ vrrp: { groups: [{ name: 'a', virtualRouterId: 1, priority: 100 }] } });
    assert.equal(keepalivedCheck(config(), undefined).status, 'skip');
    assert.equal(keepalivedCheck(vrrp, { found: false, exitCode: undefined, output: '' }).status, 'fail');
    assert.deepEqual(keepalivedCheck(vrrp, { found: true, exitCode: 0, output: 'Keepalived v2.2.7 (01/16,2022)\n\nCopyright' }), { group: 'binaries', name: 'keepalived', status: 'ok', message: '/usr/sbin/keepalived: keepalived 2.2.7' });
    assert.equal(keepalivedCheck(vrrp, { found: true, exitCode: 1, output: 'something else' }).status, 'fail');
    assert.equal(arpingCheck(config({ vrrp: { enabled: false, garpRepeat: 0 } }), undefined).status, 'skip');
    assert.equal(arpingCheck(vrrp, { found: true, exitCode: 0, output: 'arping from iputils 20221126' }).status, 'ok');
    assert.match(arpingCheck(vrrp, { found: true, exitCode: 0, output: 'ARPing 2.23, by Thomas Habets' }).message, /not the iputils one/);
    assert.match(arpingCheck(vrrp, { found: false, exitCode: undefined, output: '' }).message, /iputils-arping/);
  });

  it('judges kube-proxy by its KubeProxyConfiguration: IPVS needs strictARP, iptables and nftables are fine', () => {
    const conf = (body: string) => ({ 'config.conf': `apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n${body}`, 'kubeconfig.conf': 'apiVersion: v1\nkind: Config\n' });
    assert.equal(kubeProxyCheck(conf('mode: ipvs\nipvs:\n  strictARP: true\n')).status, 'ok');
    assert.equal(kubeProxyCheck(conf('mode: ipvs\nipvs:\n  strictARP: false\n')).status, 'fail');
    assert.equal(kubeProxyCheck(conf('mode: ipvs\n')).status, 'fail');
    assert.match(kubeProxyCheck(conf('mode: ""\n')).message, /^mode iptables:/);
    assert.equal(kubeProxyCheck(conf('mode: nftables\n')).status, 'ok');
    assert.equal(kubeProxyCheck(conf('mode: kernelspace\n')).status, 'warn');
    assert.equal(kubeProxyCheck({ 'config.conf': ': : not yaml [' }).status, 'warn');
    assert.equal(kubeProxyCheck(undefined).status, 'warn');
  });

  it('names our Services whose ingress has ipMode Proxy, and only ours', () => {
    const svc = (name: string, ingress: Array<{ ip: string; ipMode?: string }>, cls?: string): V1Service => ({
      metadata: { name, namespace: 'default' }, spec: { type: 'LoadBalancer', ...(cls ? { loadBalancerClass: cls } : {}) }, status: { loadBalancer: { ingress } },
    });
    const k = config().kubernetes;
    const r = proxyModeChecks([svc('a', [{ ip: '192.0.2.1', ipMode: 'VIP' }]), svc('b', [{ ip: '192.0.2.2', ipMode: 'VIP' }, { ip: '192.0.2.3', ipMode: 'Proxy' }]), svc('c', [{ ip: '192.0.2.4', ipMode: 'Proxy' }], 'other.example/lb')], k);
    assert.deepEqual(r.map((c) => [c.name, c.status]), [['default/b', 'fail']]);
    assert.match(r[0]!.message, /^status\.loadBalancer\.ingress\[1\] 192\.0\.2\.3 has ipMode Proxy/);
    assert.deepEqual(proxyModeChecks([svc('a', [{ ip: '192.0.2.1', ipMode: 'VIP' }])], k).map((c) => c.status), ['ok']);
  });
});
