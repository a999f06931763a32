// The real daemon on a real IPVS kernel, for every forwarding method: Services applied with kubectl get VIPs
// from pools that forward by direct routing (IPv4 and IPv6), IPIP tunnel and NAT to the nodePort, and a
// client's requests alternate between the two nodes with its own address intact. The daemon also checks the
// LB host's sysctls at start and, with sysctl.manage, sets what NAT needs.
// The nodes accept traffic the ways real ones do: the DR VIPs on kube-ipvs0 (kube-proxy's IPVS mode), the
// tunnel VIP on tunl0, and for NAT a server on the nodePort whose replies are routed back through the LB
// (policy routing by source port, so the DR replies still go straight to the router).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { applyTopology, curlMany, parseWhoami, startVm, type Vm, labTimeScale } from '../../lab/vm/index.js';
import { LabDaemon, until } from './daemon-lab.js';

const VIP_DR = '192.0.2.10';
const VIP_TUN = '192.0.2.20';
const VIP_NAT = '192.0.2.30';
const VIP6 = '2001:db8:ff::10';
const NODE_PORT = 30080;
const LB = '198.51.100.2';
const NODES = [
  { name: 'node-1', ip: '198.51.100.11', ip6: '2001:db8:100::11' },
  { name: 'node-2', ip: '198.51.100.12', ip6: '2001:db8:100::12' },
];

const svc = (name: string, pool: string, ip: string, extra = '', port = '') => `apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: default
  annotations: {ipvs-lb.io/address-pool: ${pool}, ipvs-lb.io/load-balancer-ips: "${ip}"}
spec:
  type: LoadBalancer
  selector: {app: whoami}
${extra}  ports: [{name: http, port: 80, targetPort: 80${port}}]
`;

const esc = (s: string) => s.replace(/[.[\]]/g, (c) => `\\${c}`);

describe('lab: the daemon forwards by DR, TUN, NAT and IPv6 DR', { timeout: (420_000) * labTimeScale() }, () => {
  let vm: Vm;
  let lab: LabDaemon;

  before(async () => {
    vm = await startVm({ backend: 'uml' });
    await applyTopology(vm, {
      lbs: [{ name: 'lb1', ip: LB, ip6: '2001:db8:100::2' }],
      nodes: NODES.map((n) => ({ ...n, vipMode: 'kube-ipvs0' as const, vips: [VIP_DR, VIP6], http: [80, NODE_PORT] })),
      clients: [{ name: 'client1', ip: '203.0.113.10', ip6: '2001:db8:203::10' }],
    });
    await vm.run('modprobe -a ip_vs ip_vs_rr ipip');
    for (const n of NODES) {
      await vm.run(`set -e
ip link set tunl0 up
ip addr add ${VIP_TUN}/32 dev tunl0
for k in all default tunl0 eth0; do echo 0 > /proc/sys/net/ipv4/conf/$k/rp_filter; done
ip rule add ipproto tcp sport ${NODE_PORT} lookup 100
ip route add default via ${LB} table 100
`, { ns: n.name });
    }
    // What the daemon must find and fix: a fresh namespace forwards nothing and keeps no conntrack for IPVS.
    await vm.run('sysctl -q -w net.ipv4.ip_forward=0 net.ipv4.vs.conntrack=0 net.ipv4.vs.expire_nodest_conn=0', { ns: 'lb1' });
    lab = await LabDaemon.start({
      vm, ns: 'lb1',
      nodes: NODES.map((n) => ({ name: n.name, ips: [n.ip, n.ip6] })),
      serviceCIDRs: ['203.0.113.128/25', '2001:db8:cafe::/112'],
      config: {
        interface: 'eth0',
        pools: [
          { name: 'dr', addresses: ['192.0.2.10-192.0.2.19'] },
          { name: 'tun', addresses: ['192.0.2.20-192.0.2.29'], forwarding: 'tun' },
          { name: 'nat', addresses: ['192.0.2.30-192.0.2.39'], forwarding: 'nat' },
          { name: 'v6', addresses: ['2001:db8:ff::10-2001:db8:ff::1f'] },
        ],
        scheduler: 'rr',
        sysctl: { manage: true },
        vrrp: { enabled: false, garpRepeat: 1 },
        reconcile: { coalesceMs: 20, resyncSeconds: 2 },
        healthCheck: { enabled: false },
      },
    });
    await lab.apply('services', [
      svc('whoami-dr', 'dr', VIP_DR),
      svc('whoami-tun', 'tun', VIP_TUN),
      svc('whoami-nat', 'nat', VIP_NAT, '', `, nodePort: ${NODE_PORT}`),
      svc('whoami-v6', 'v6', VIP6, '  ipFamilies: [IPv6]\n  ipFamilyPolicy: SingleStack\n'),
    ].join('---\n'));
    await until('four virtual services with two real servers each', async () => {
      const t = await lab.ipvsadm('-Ln');
      return (t.match(/->\s+\S+\s+(Route|Tunnel|Masq)/g) ?? []).length === 8 ? t : undefined;
    }, { timeoutMs: 120_000, log: lab.log });
  });

  after(async () => {
    await vm?.stop();
  });

  it('checked the host sysctls at start and set what NAT and draining need, reporting them in /readyz', async () => {
    const v = (await vm.run(['sysctl', '-n', 'net.ipv4.ip_forward', 'net.ipv4.vs.conntrack', 'net.ipv4.vs.expire_nodest_conn'], { ns: 'lb1' })).stdout.trim().split('\n');
    assert.deepEqual(v, ['1', '1', '1']);
    const h = await lab.api<{ sysctls: Array<{ key: string; ok: boolean; actual: string }> }>('/readyz');
    const byKey = Object.fromEntries(h.sysctls.map((f) => [f.key, [f.ok, f.actual]]));
    assert.deepEqual(byKey['net.ipv4.ip_forward'], [true, '1']);
    assert.deepEqual(byKey['net.ipv4.vs.conntrack'], [true, '1']);
    assert.deepEqual(byKey['net.ipv6.conf.eth0.disable_ipv6'], [true, '0']);
    assert.match(lab.log(), /"sysctl":"net\.ipv4\.ip_forward","from":"0","to":"1".*sysctl set/);
  });

  it('DR (IPv4): replies alternate between the nodes, which see the client address and the VIP', async () => {
    assert.match(await lab.ipvsadm('-Ln'), new RegExp(`TCP\\s+${esc(VIP_DR)}:80 rr\\s+->\\s+198\\.51\\.100\\.1[12]:80\\s+Route`));
    const answers = (await curlMany(vm, 'client1', `http://${VIP_DR}/`, 4)).map(parseWhoami);
    for (let i = 1; i < answers.length; i++) assert.notEqual(answers[i]!.node, answers[i - 1]!.node, 'round robin alternates');
    for (const a of answers) assert.deepEqual([a.client, a.local], ['203.0.113.10', VIP_DR]);
  });

  it('TUN: the VIP is tunnelled (IPIP) to the nodes, which decapsulate it on tunl0', async () => {
    const t = await lab.ipvsadm('-Ln');
    for (const n of NODES) assert.match(t, new RegExp(`TCP\\s+${esc(VIP_TUN)}:80 rr[\\s\\S]*?->\\s+${esc(n.ip)}:80\\s+Tunnel\\s+1`));
    const answers = (await curlMany(vm, 'client1', `http://${VIP_TUN}/`, 4)).map(parseWhoami);
    for (let i = 1; i < answers.length; i++) assert.notEqual(answers[i]!.node, answers[i - 1]!.node, 'round robin alternates');
    for (const a of answers) assert.deepEqual([a.client, a.local], ['203.0.113.10', VIP_TUN]);
  });

  it('NAT: the VIP is translated to each node\'s nodePort and the replies come back through the LB', async () => {
    const t = await lab.ipvsadm('-Ln');
    for (const n of NODES) assert.match(t, new RegExp(`TCP\\s+${esc(VIP_NAT)}:80 rr[\\s\\S]*?->\\s+${esc(n.ip)}:${NODE_PORT}\\s+Masq\\s+1`));
    const answers = (await curlMany(vm, 'client1', `http://${VIP_NAT}/`, 4)).map(parseWhoami);
    for (let i = 1; i < answers.length; i++) assert.notEqual(answers[i]!.node, answers[i - 1]!.node, 'round robin alternates');
    for (const a of answers) {
      assert.equal(a.client, '203.0.113.10', 'NAT keeps the client address');
      assert.equal(a.localPort, NODE_PORT);
      assert.equal(a.local, NODES.find((n) => n.name === a.node)!.ip);
    }
  });

  it('DR (IPv6): replies alternate between the nodes over IPv6', async () => {
    const t = await lab.ipvsadm('-Ln');
    for (const n of NODES) assert.match(t, new RegExp(`TCP\\s+\\[${esc(VIP6)}\\]:80 rr[\\s\\S]*?->\\s+\\[${esc(n.ip6)}\\]:80\\s+Route\\s+1`));
    const addrs = (await vm.run(['ip', '-o', '-6', 'addr', 'show', 'dev', 'eth0'], { ns: 'lb1' })).stdout;
    assert.match(addrs, new RegExp(`inet6 ${esc(VIP6)}/128`));
    const answers = (await curlMany(vm, 'client1', `http://[${VIP6}]/`, 4)).map(parseWhoami);
    for (let i = 1; i < answers.length; i++) assert.notEqual(answers[i]!.node, answers[i - 1]!.node, 'round robin alternates');
    for (const a of answers) assert.deepEqual([a.client, a.local], ['2001:db8:203::10', VIP6]);
  });
});
