// Issue 3, done-when 1 on the second backend: the real Debian amd64 kernel under QEMU software emulation,
// booted from the cached vmlinux and initramfs. Slower than UML (about 3x per process), so one small scene:
// DR to a kube-ipvs0 node and to a node that DNATs the VIP with nftables (UML's kernel cannot: no nft nat).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { applyTopology, curlMany, parseWhoami, startVm, type Vm, labTimeScale } from '../../lab/vm/index.js';

const VIP = '192.0.2.10';

describe('lab: IPVS direct routing in the QEMU guest', { timeout: (170_000) * labTimeScale() }, () => {
  let vm: Vm;

  before(async () => {
    vm = await startVm({ backend: 'qemu' });
    await applyTopology(vm, {
      lbs: [{ name: 'lb1', ip: '198.51.100.2', vips: [VIP] }],
      nodes: [
        { name: 'node1', ip: '198.51.100.11', vipMode: 'kube-ipvs0', vips: [VIP] },
        { name: 'node2', ip: '198.51.100.12', vipMode: 'dnat-nft', vips: [VIP] },
      ],
      clients: [{ name: 'client1', ip: '203.0.113.10' }],
    });
    await vm.run(['ipvsadm', '-R'], {
      ns: 'lb1',
      input: `-A -t ${VIP}:80 -s rr\n-a -t ${VIP}:80 -r 198.51.100.11:80 -g\n-a -t ${VIP}:80 -r 198.51.100.12:80 -g\n`,
    });
  });

  after(async () => {
    await vm?.stop();
  });

  it('runs the Debian kernel, not UML', async () => {
    const r = await vm.run(['uname', '-r']);
    assert.match(r.stdout, /^6\.1\.\d+-\d+-amd64\n$/);
  });

  it('alternates between the two nodes and each sees the client address', async () => {
    const answers = (await curlMany(vm, 'client1', `http://${VIP}/`, 4)).map(parseWhoami);
    const nodes = answers.map((a) => a.node);
    for (let i = 1; i < nodes.length; i++) assert.notEqual(nodes[i], nodes[i - 1], `round robin must alternate: ${nodes.join(' ')}`);
    assert.deepEqual(new Set(nodes), new Set(['node1', 'node2']));
    for (const a of answers) assert.equal(a.client, '203.0.113.10');
    assert.ok(answers.filter((a) => a.node === 'node2').every((a) => a.local === '198.51.100.12'), 'nftables DNAT rewrote the VIP');
  });
});
