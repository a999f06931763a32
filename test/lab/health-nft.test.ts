// The DR path check's kernel side with the nftables marker on the real Debian amd64 kernel (QEMU: the UML
// kernel has no nf_tables families), IPv4 and IPv6: the real DrPathKernel sets accept_local, creates one IPVS
// fwmark service per node and the nftables table, and the real tcpProbe through the VIP reaches exactly the
// node its source port selects. A node that does not hold the VIP fails; teardown removes everything it made
// and nothing else. The LB host holds the VIPs, as a VRRP master does.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { applyTopology, startVm, type Vm, labTimeScale } from '../../lab/vm/index.js';

const dist = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..');

// Runs in the guest's lb1 namespace; prints one JSON line per step.
const script = `
import { parseConfig } from '${dist}/src/config/schema.js';
import { DrPathKernel } from '${dist}/src/health/dr-kernel.js';
import { IpvsClient } from '${dist}/src/ipvs/index.js';
import { tcpProbe } from '${dist}/src/health/probes.js';
import { createLogger } from '${dist}/src/util/log.js';
const r = parseConfig({
  interface: 'eth0', stateDir: '/tmp/dr-state', vrrp: { enabled: false }, sysctl: { manage: true },
  pools: [{ name: 'default', addresses: ['192.0.2.0/24', '2001:db8:ff::/64'] }],
  healthCheck: { drPath: { marker: 'nft' } },
});
if (!r.ok) throw new Error(r.problems.join('; '));
const policy = { key: 'p', intervalMs: 2000, timeoutMs: 1500, rise: 2, fall: 2, damping: undefined };
const unit = (node, n, vip, family) => ({ key: node + '|' + vip, node, nodeAddress: family === 4 ? '198.51.100.' + (10 + n) : '2001:db8:100::' + (10 + n), vsKey: 'TCP/' + vip + ':80', vip, family, port: 80, policy });
const units = new Map(['node-1', 'node-2'].map((node, i) => [node, [unit(node, i + 1, '192.0.2.1', 4), unit(node, i + 1, '2001:db8:ff::1', 6)]]));
const lanes = new Map([...units].map(([node, us]) => [node, { node, vss: [], addresses: { 4: us[0].nodeAddress, 6: us[1].nodeAddress }, vipCount: 2, intervalMs: 2000, timeoutMs: 1500 }]));
const k = await DrPathKernel.open({ config: () => r.config, log: createLogger('silent') });
const sync = await k.sync(lanes);
console.log(JSON.stringify({ step: 'sync', families: [...sync.families], problems: sync.problems }));
const c = await IpvsClient.open();
const fwm = [];
for (const s of await c.services()) if (s.fwmark) fwm.push(s.fwmark + '/' + s.family + ' ' + (await c.destinations({ fwmark: s.fwmark, family: s.family })).map((d) => d.address).join(','));
c.close();
console.log(JSON.stringify({ step: 'kernel', fwm: fwm.sort() }));
for (const us of units.values()) {
  for (const u of us) {
    const port = k.acquirePort(u.node);
    const o = await tcpProbe({ address: u.vip, port: 80, localAddress: k.sourceAddress(u.family), localPort: port }, 1500);
    k.releasePort(u.node, port);
    console.log(JSON.stringify({ step: 'probe', node: u.node, vip: u.vip, port, ok: o.ok, error: o.error }));
  }
}
if (process.argv[2] === 'teardown') { await k.teardown(); console.log(JSON.stringify({ step: 'teardown' })); }
k.close();
`;

describe('lab (QEMU): the DR path check with the nftables marker, IPv4 and IPv6', { timeout: (900_000) * labTimeScale() }, () => {
  let vm: Vm;
  let firstKernel: Record<string, unknown> | undefined;
  const lines = (out: string) => out.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);

  before(async () => {
    vm = await startVm({ backend: 'qemu', memoryMb: 768 });
    await applyTopology(vm, {
      lbs: [{ name: 'lb1', ip: '198.51.100.2', ip6: '2001:db8:100::2', vips: ['192.0.2.1', '2001:db8:ff::1'] }],
      nodes: [
        { name: 'node-1', ip: '198.51.100.11', ip6: '2001:db8:100::11', vipMode: 'kube-ipvs0', vips: ['192.0.2.1', '2001:db8:ff::1'] },
        { name: 'node-2', ip: '198.51.100.12', ip6: '2001:db8:100::12', vipMode: 'none' },
      ],
    });
    await vm.run('modprobe -a ip_vs ip_vs_rr nf_tables');
    // Something of the operator's own in IPVS that must survive the teardown.
    await vm.run(['ipvsadm', '-A', '-f', '7', '-s', 'wlc'], { ns: 'lb1' });
    await vm.writeFile(`${vm.runDir}/dr.mjs`, script);
  });

  after(async () => {
    await vm?.stop();
  });

  it('sends each probe to the node its source port selects; the node without the VIP fails', async () => {
    const r = await vm.run(['node', `${vm.runDir}/dr.mjs`], { ns: 'lb1', timeoutMs: 600_000 });
    const out = lines(r.stdout);
    assert.deepEqual(out[0], { step: 'sync', families: [4, 6], problems: [] });
    firstKernel = out[1];
    assert.deepEqual(firstKernel, { step: 'kernel', fwm: ['458883072/4 198.51.100.11', '458883072/6 2001:db8:100::11', '458883073/4 198.51.100.12', '458883073/6 2001:db8:100::12', '7/4 '] });
    // node-2 drops IPv4 for the VIP silently; for IPv6 it has no route and answers ICMPv6 "no route".
    const probes = out.filter((l) => l.step === 'probe').map((l) => `${l.node} ${l.vip} ${l.ok ? 'ok' : `failed: ${l.error}`}`);
    assert.deepEqual(probes, [
      'node-1 192.0.2.1 ok',
      'node-1 2001:db8:ff::1 ok',
      'node-2 192.0.2.1 failed: no answer within 1500 ms',
      'node-2 2001:db8:ff::1 failed: network unreachable',
    ]);
    const lb = async (cmd: string[]) => (await vm.run(cmd, { ns: 'lb1' })).stdout;
    assert.equal((await lb(['sysctl', '-n', 'net.ipv4.conf.eth0.accept_local'])).trim(), '1');
    const table = await lb(['nft', 'list', 'table', 'inet', 'ipvs_lb_health']);
    assert.match(table, /ip daddr 192\.0\.2\.0\/24 tcp sport 61000-65535 meta mark set tcp sport map \{ 61000-61003 : 0x1b5a0000, 61004-61007 : 0x1b5a0001 \}/);
    assert.match(table, /ip6 daddr 2001:db8:ff::\/64 tcp sport 61000-65535/);
    const ipvs = await lb(['ipvsadm', '-Ln']);
    assert.match(ipvs, /FWM {2}458883072 rr\n\s+-> 198\.51\.100\.11:0\s+Route\s+1/);
    assert.match(ipvs, /FWM {2}458883072 IPv6 rr\n\s+-> \[2001:db8:100::11\]:0\s+Route\s+1/);
    // The probes were reset, not left in TIME_WAIT: IPVS saw them close.
    assert.doesNotMatch(await lb(['ipvsadm', '-Lnc']), /ESTABLISHED/);
  });

  it('a restart adopts the fwmark services it recorded, and teardown removes only what it made', async () => {
    const r = await vm.run(['node', `${vm.runDir}/dr.mjs`, 'teardown'], { ns: 'lb1', timeoutMs: 600_000 });
    const out = lines(r.stdout);
    assert.deepEqual(out[0], { step: 'sync', families: [4, 6], problems: [] });
    assert.deepEqual(out[1], firstKernel, 'the same services, same destinations');
    assert.equal(out.at(-1)!.step, 'teardown');
    const after = (await vm.run(['ipvsadm', '-Ln'], { ns: 'lb1' })).stdout;
    assert.doesNotMatch(after, /45888307\d/);
    assert.match(after, /FWM {2}7 wlc/);
    assert.notEqual((await vm.exec(['nft', 'list', 'table', 'inet', 'ipvs_lb_health'], { ns: 'lb1' })).code, 0);
  });
});
