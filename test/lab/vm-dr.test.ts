// Issue 3, done-when 1: a real IPVS kernel (User-Mode Linux) forwards a client's HTTP requests by direct
// routing to two nodes, alternating, and the nodes see the client's real address. Nodes accept the VIP the
// ways kube-proxy makes real nodes accept it; a node that does not accept it is the negative control.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { applyTopology, curlMany, parseWhoami, startVm, type Vm, labTimeScale } from '../../lab/vm/index.js';

const VIP_DR = '192.0.2.10';
const VIP_TUN = '192.0.2.20';
const VIP_DEAD = '192.0.2.30';
const VIP6 = '2001:db8:ff::10';

describe('lab: IPVS direct routing in the UML guest', { timeout: (150_000) * labTimeScale() }, () => {
  let vm: Vm;

  before(async () => {
    vm = await startVm({ backend: 'uml' });
    await applyTopology(vm, {
      lbs: [{ name: 'lb1', ip: '198.51.100.2', ip6: '2001:db8:100::2', vips: [VIP_DR, VIP_TUN, VIP_DEAD, VIP6] }],
      nodes: [
        { name: 'node1', ip: '198.51.100.11', ip6: '2001:db8:100::11', vipMode: 'kube-ipvs0', vips: [VIP_DR, VIP6] },
        { name: 'node2', ip: '198.51.100.12', ip6: '2001:db8:100::12', vipMode: 'dnat', vips: [VIP_DR, VIP6] },
        { name: 'node3', ip: '198.51.100.13', vipMode: 'tunl0', vips: [VIP_TUN] },
        { name: 'node4', ip: '198.51.100.14', vipMode: 'none', vips: [VIP_DEAD] },
      ],
      clients: [{ name: 'client1', ip: '203.0.113.10', ip6: '2001:db8:203::10' }],
    });
    // One ipvsadm process for the whole table (process start-up is the expensive part under emulation).
    await vm.run(['ipvsadm', '-R'], {
      ns: 'lb1',
      input: [
        `-A -t ${VIP_DR}:80 -s rr`,
        `-a -t ${VIP_DR}:80 -r 198.51.100.11:80 -g -w 1`,
        `-a -t ${VIP_DR}:80 -r 198.51.100.12:80 -g -w 1`,
        `-A -t ${VIP_TUN}:80 -s rr`,
        `-a -t ${VIP_TUN}:80 -r 198.51.100.13:80 -i -w 1`,
        `-A -t ${VIP_DEAD}:80 -s rr`,
        `-a -t ${VIP_DEAD}:80 -r 198.51.100.14:80 -g -w 1`,
        `-A -t [${VIP6}]:80 -s rr`,
        `-a -t [${VIP6}]:80 -r [2001:db8:100::11]:80 -g -w 1`,
        `-a -t [${VIP6}]:80 -r [2001:db8:100::12]:80 -g -w 1`,
        '',
      ].join('\n'),
    });
  });

  after(async () => {
    await vm?.stop();
  });

  it('alternates between the two nodes and each sees the client address', async () => {
    const answers = (await curlMany(vm, 'client1', `http://${VIP_DR}/`, 6)).map(parseWhoami);
    const nodes = answers.map((a) => a.node);
    for (let i = 1; i < nodes.length; i++) assert.notEqual(nodes[i], nodes[i - 1], `round robin must alternate: ${nodes.join(' ')}`);
    assert.deepEqual(new Set(nodes), new Set(['node1', 'node2']));
    for (const a of answers) assert.equal(a.client, '203.0.113.10', 'DR keeps the client address');
    // kube-ipvs0 (IPVS mode) answers on the VIP itself; the DNAT node (iptables mode) on its own address.
    assert.ok(answers.filter((a) => a.node === 'node1').every((a) => a.local === VIP_DR));
    assert.ok(answers.filter((a) => a.node === 'node2').every((a) => a.local === '198.51.100.12'));
  });

  it('the connections went through IPVS on the LB and replies bypassed it', async () => {
    const conns = (await vm.run(['ipvsadm', '-Lnc'], { ns: 'lb1' })).stdout;
    assert.match(conns, new RegExp(`203\\.0\\.113\\.10:\\d+\\s+${VIP_DR.replace(/\./g, '\\.')}:80\\s+198\\.51\\.100\\.11:80`));
    assert.match(conns, new RegExp(`203\\.0\\.113\\.10:\\d+\\s+${VIP_DR.replace(/\./g, '\\.')}:80\\s+198\\.51\\.100\\.12:80`));
    // Direct routing: IPVS sees only the client's half of each connection, so the entries stop at FIN_WAIT;
    // TIME_WAIT would need the server's FIN, which goes straight from the node to the router.
    assert.match(conns, /FIN_WAIT/);
    assert.doesNotMatch(conns, /TIME_WAIT/);
  });

  it('tunnels to a node that holds the VIP on tunl0', async () => {
    const [a] = (await curlMany(vm, 'client1', `http://${VIP_TUN}/`, 1)).map(parseWhoami);
    assert.equal(a?.node, 'node3');
    assert.equal(a?.client, '203.0.113.10');
    assert.equal(a?.local, VIP_TUN);
  });

  it('does the same over IPv6 (kube-ipvs0 and ip6tables DNAT nodes)', async () => {
    const answers = (await curlMany(vm, 'client1', `http://[${VIP6}]/`, 4)).map(parseWhoami);
    const nodes = answers.map((a) => a.node);
    for (let i = 1; i < nodes.length; i++) assert.notEqual(nodes[i], nodes[i - 1], `round robin must alternate: ${nodes.join(' ')}`);
    assert.deepEqual(new Set(nodes), new Set(['node1', 'node2']));
    for (const a of answers) assert.equal(a.client, '2001:db8:203::10');
    assert.ok(answers.filter((a) => a.node === 'node1').every((a) => a.local === VIP6));
    assert.ok(answers.filter((a) => a.node === 'node2').every((a) => a.local === '2001:db8:100::12'));
  });

  it('a node that does not accept the VIP does not answer (negative control)', async () => {
    const [r] = await curlMany(vm, 'client1', `http://${VIP_DEAD}/`, 1, 2);
    assert.match(r ?? '', /^curl-failed code=000/);
  });
});
