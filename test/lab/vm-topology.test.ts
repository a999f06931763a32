// The pure parts of the lab: topology validation and script generation, the quoting every guest command goes
// through, and the initramfs module order. No VM needed; the generated script itself runs in vm-dr.test.ts.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { checkTopology, parseWhoami, planTopology } from '../../lab/vm/index.js';
import { findQemuKernel, moduleLoadOrder } from '../../lab/vm/qemu-assets.js';
import { envFile, shArgv } from '../../lab/vm/shell.js';

const RUN = '/tmp/ipvs-lb-lab-test';

describe('lab topology: validation', () => {
  const node = { name: 'node1', ip: '198.51.100.11' };
  const cases: Array<[string, Parameters<typeof checkTopology>[0], RegExp]> = [
    ['address outside the documentation ranges', { nodes: [{ ...node, ip: '10.0.0.1' }] }, /nodes\[0\]\.ip: 10\.0\.0\.1 is outside 198\.51\.100\.0\/24/],
    ['client in the VIP range', { clients: [{ name: 'c', ip: '192.0.2.5' }] }, /clients\[0\]\.ip: 192\.0\.2\.5 is outside/],
    ['VIP outside 192.0.2.0/24', { nodes: [{ ...node, vips: ['198.51.100.99'] }] }, /nodes\[0\]\.vips\[0\]: 198\.51\.100\.99 is outside 192\.0\.2\.0\/24/],
    ['not an address', { lbs: [{ name: 'lb1', ip: '198.51.100.256' }] }, /lbs\[0\]\.ip: "198\.51\.100\.256" is not an IP address/],
    ['broadcast address', { nodes: [{ ...node, ip: '198.51.100.255' }] }, /network or broadcast/],
    ['the router address', { nodes: [{ ...node, ip: '198.51.100.1' }] }, /198\.51\.100\.1 is the router's or used twice/],
    ['duplicate address', { nodes: [node, { name: 'node2', ip: node.ip }] }, /nodes\[1\]\.ip: 198\.51\.100\.11/],
    ['duplicate name', { nodes: [node], clients: [{ name: 'node1', ip: '203.0.113.9' }] }, /clients\[0\]\.name: "node1" is reserved or used twice/],
    ['reserved name', { lbs: [{ name: 'router', ip: '198.51.100.3' }] }, /"router" is reserved/],
    ['name that could be an option', { nodes: [{ ...node, name: '-n' }] }, /nodes\[0\]\.name: "-n" must match/],
    ['name too long for a veth peer', { nodes: [{ ...node, name: 'a-very-long-node' }] }, /must match/],
    ['unknown mode', { nodes: [{ ...node, vipMode: 'bgp' as never }] }, /nodes\[0\]\.vipMode: "bgp" is not one of/],
    ['bad port', { nodes: [{ ...node, http: [0] }] }, /nodes\[0\]\.http: 0 is not a TCP port/],
    ['IPv6 VIP on a node without ip6', { nodes: [{ ...node, vips: ['2001:db8:ff::1'] }] }, /nodes\[0\]\.vips: IPv6 VIPs need nodes\[0\]\.ip6/],
    ['IPv6 VIP on tunl0', { nodes: [{ ...node, ip6: '2001:db8:100::11', vipMode: 'tunl0', vips: ['2001:db8:ff::1'] }] }, /tunl0 takes IPv4 VIPs only/],
    ['IPv6 address off the segment', { clients: [{ name: 'c', ip: '203.0.113.9', ip6: '2001:db8:100::9' }] }, /clients\[0\]\.ip6: 2001:db8:100::9 is outside 2001:db8:203::\/64/],
    ['IPv6 zone index', { nodes: [{ ...node, ip6: '2001:db8:100::11%eth0' }] }, /is not an IP address/],
    ['IPv6 VIP outside the range', { nodes: [{ ...node, ip6: '2001:db8:100::11', vips: ['2001:db8:100::99'] }] }, /outside 192\.0\.2\.0\/24 and 2001:db8:ff::\/64/],
    ['same IPv6 address twice (in another spelling)', { nodes: [{ ...node, ip6: '2001:db8:100::11' }, { name: 'node2', ip: '198.51.100.12', ip6: '2001:0db8:0100::0011' }] }, /nodes\[1\]\.ip6: 2001:db8:100::11 is the router's or used twice/],
    ['two servers on a port', { nodes: [{ ...node, http: [80], echo: [80] }] }, /port 80 is used by two servers/],
  ];
  for (const [what, spec, err] of cases) {
    it(`rejects ${what}`, () => assert.throws(() => checkTopology(spec), err));
  }

  it('refuses nftables DNAT on UML, whose kernel has no nft nat chain, and accepts it on QEMU', () => {
    const spec = { nodes: [{ ...node, vipMode: 'dnat-nft' as const, vips: ['192.0.2.1'] }] };
    assert.throws(() => checkTopology(spec, 'uml'), /dnat-nft needs the QEMU backend/);
    assert.doesNotThrow(() => checkTopology(spec, 'qemu'));
  });
});

describe('lab topology: generated scripts', () => {
  const plan = planTopology({
    lbs: [{ name: 'lb1', ip: '198.51.100.2', vips: ['192.0.2.10'] }],
    nodes: [
      { name: 'node1', ip: '198.51.100.11', vipMode: 'kube-ipvs0', vips: ['192.0.2.10'], echo: [7] },
      { name: 'node2', ip: '198.51.100.12', vipMode: 'dnat', vips: ['192.0.2.10'] },
      { name: 'node3', ip: '198.51.100.13', vipMode: 'tunl0', vips: ['192.0.2.10'], http: [] },
    ],
    clients: [{ name: 'wan1', ip: '203.0.113.10' }, { name: 'lan1', ip: '198.51.100.50' }],
  }, RUN);

  it('is valid bash', () => {
    for (const text of [plan.script, ...plan.files.values()]) {
      const r = spawnSync('bash', ['-n'], { input: text });
      assert.equal(r.status, 0, r.stderr.toString());
    }
  });

  it('puts clients behind the router only when they are on the WAN', () => {
    assert.match(plan.script, /netns add router/);
    assert.match(plan.script, /link set v-wan1 master br-wan up/);
    assert.match(plan.script, /link set v-lan1 master br-lan up/);
    assert.match(plan.files.get('router.sh') ?? '', /echo 1 > \/proc\/sys\/net\/ipv4\/ip_forward/);
    const noWan = planTopology({ clients: [{ name: 'c', ip: '198.51.100.50' }] }, RUN);
    assert.doesNotMatch(noWan.script, /router/);
  });

  it('configures each node the way its kube-proxy mode would', () => {
    const n1 = plan.files.get('node1.sh') ?? '';
    assert.match(n1, /link add kube-ipvs0 type dummy\naddr add 192\.0\.2\.10\/32 dev kube-ipvs0/);
    assert.doesNotMatch(n1, /link set kube-ipvs0 up/, 'kube-proxy leaves kube-ipvs0 down');
    assert.match(n1, /arp_ignore/);
    const n2 = plan.files.get('node2.sh') ?? '';
    assert.match(n2, /-A PREROUTING -d 192\.0\.2\.10\/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 198\.51\.100\.12:80/);
    assert.doesNotMatch(n2, /192\.0\.2\.10\/32 dev/, 'in DNAT mode the VIP is on no interface');
    const n3 = plan.files.get('node3.sh') ?? '';
    assert.match(n3, /addr add 192\.0\.2\.10\/32 dev tunl0/);
    assert.match(n3, /tunl0\/rp_filter/);
    assert.match(plan.script, /modprobe -a veth bridge dummy ipip iptable_nat/);
  });

  it('adds IPv6 without DAD, with ip6tables DNAT and an IPv6 listener per server', () => {
    const p6 = planTopology({
      nodes: [{ name: 'node1', ip: '198.51.100.11', ip6: '2001:db8:100::11', vipMode: 'dnat', vips: ['2001:db8:ff::10'] }],
      clients: [{ name: 'wan1', ip: '203.0.113.10', ip6: '2001:db8:203::10' }],
    }, RUN);
    const n1 = p6.files.get('node1.sh') ?? '';
    assert.match(n1, /addr add 2001:db8:100::11\/64 dev eth0 nodad/);
    assert.match(n1, /ip6tables-legacy-restore/);
    assert.match(n1, /--to-destination \[2001:db8:100::11\]:80/);
    assert.match(n1, /route add default via 2001:db8:100::1\n/);
    assert.match(p6.files.get('router.sh') ?? '', /ipv6\/conf\/all\/forwarding/);
    assert.deepEqual(p6.servers.map((s) => `${s.name}/${s.family}`), ['http-node1-80/4', 'http6-node1-80/6']);
    assert.match(n1, /lab_wait_listen 80 6:80/);
  });

  it('lists every server it starts', () => {
    assert.deepEqual(plan.servers.map((s) => s.name), ['http-node1-80', 'echo-node1-7', 'http-node2-80']);
  });
});

describe('lab shell quoting', () => {
  it('passes any argument to the guest shell unchanged', () => {
    const nasty = ["it's", '$(echo pwned)', '`id`', 'a b\tc\nd', '"; echo injected', '\\', '', '-n', '*'];
    const r = spawnSync('bash', ['-c', `printf '%s\\0' ${shArgv(nasty)}`]);
    assert.equal(r.status, 0);
    assert.deepEqual(r.stdout.toString().split('\0').slice(0, -1), nasty);
  });

  it('writes knobs as exports and refuses names that are not variables', () => {
    const r = spawnSync('bash', ['-c', `${envFile({ A_1: "x'y $z" })}printf %s "$A_1"`]);
    assert.equal(r.stdout.toString(), "x'y $z");
    assert.throws(() => envFile({ 'A;id': 'v' }), /invalid variable name "A;id"/);
  });
});

describe('lab misc', () => {
  it('parses the HTTP servers\' answer', () => {
    assert.deepEqual(parseWhoami('node=node1 client=203.0.113.10 clientport=40000 local=192.0.2.10 localport=80\n'), {
      node: 'node1', client: '203.0.113.10', clientPort: 40000, local: '192.0.2.10', localPort: 80,
    });
    assert.throws(() => parseWhoami('<html>'), /not a lab HTTP answer/);
    const v6 = parseWhoami('node=n client=[2001:0db8:0203:0000:0000:0000:0000:0010] clientport=1 local=[2001:0db8:00ff:0000:0000:0000:0000:0010] localport=80');
    assert.equal(v6.client, '2001:db8:203::10');
    assert.equal(v6.local, '2001:db8:ff::10');
  });

  it('orders the initramfs modules after their dependencies', () => {
    const { release } = findQemuKernel();
    const order = moduleLoadOrder(readFileSync(`/lib/modules/${release}/modules.dep`, 'utf8'), ['virtio_pci', '9pnet_virtio', '9p', 'overlay']);
    const at = (m: string): number => order.findIndex((p) => p.endsWith(`/${m}.ko`));
    for (const [dep, mod] of [['virtio', 'virtio_pci'], ['9pnet', '9pnet_virtio'], ['netfs', 'fscache'], ['fscache', '9p'], ['9pnet', '9p']] as const) {
      assert.ok(at(dep) >= 0 && at(dep) < at(mod), `${dep} before ${mod}: ${order.join(' ')}`);
    }
    assert.equal(new Set(order).size, order.length);
    assert.throws(() => moduleLoadOrder('', ['nope']), /module nope is not in modules.dep/);
  });
});
