import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { ServiceWithDests } from '../../src/ipvs/index.js';
import type { Stats } from '../../src/ipvs/types.js';
import { diff, sameService, toKernelService } from '../../src/reconcile/diff.js';
import { dumpedKey, fromKernel, sameAsDumped, toIpvsOp } from '../../src/reconcile/kernel-map.js';
import { vipOfKey } from '../../src/reconcile/reconciler.js';
import type { DesiredVirtualService } from '../../src/model/types.js';

const zero: Stats = { conns: 0n, inpkts: 0n, outpkts: 0n, inbytes: 0n, outbytes: 0n, cps: 0n, inpps: 0n, outpps: 0n, inbps: 0n, outbps: 0n };
const desired: DesiredVirtualService = {
  key: 'TCP/[2001:db8::5]:443', vip: '2001:db8::5', family: 6, protocol: 'TCP', port: 443, scheduler: 'mh', schedulerFlags: ['mh-fallback', 'mh-port'],
  persistenceTimeoutSeconds: 600, forwarding: 'dr', service: 'default/web', serviceUid: 'u', pool: 'v6', vrrpGroup: 'a',
  realServers: [{ address: '2001:db8:1::21', port: 443, weight: 1, node: 'a', state: 'serving' }],
};
/** What the kernel reports after programming `desired` (flags as raw bits, protocol lower-case). */
const dumped: ServiceWithDests = {
  service: { family: 6, protocol: 'tcp', address: '2001:db8::5', port: 443, fwmark: 0, scheduler: 'mh', flags: 0x1 | 0x8 | 0x10, schedulerFlags: ['flag-1', 'flag-2'], onePacket: false, persistence: { timeout: 600, netmask: 128 }, persistenceEngine: undefined, stats: zero },
  destinations: [{ family: 6, address: '2001:db8:1::21', port: 443, forwarding: 'dr', weight: 1, upperThreshold: 0, lowerThreshold: 0, activeConns: 3, inactiveConns: 0, persistentConns: 0, tunnel: undefined, stats: zero }],
};

describe('kernel mapping', () => {
  it('reads back what it programs: no operation for an unchanged service', () => {
    const actual = fromKernel(dumped)!;
    assert.equal(actual.key, desired.key);
    assert.deepEqual(diff({ desired: [toKernelService(desired)], actual: [actual], owned: () => true }), []);
  });

  it('turns diff operations into IPVS client operations with lower-case protocols and named flags', () => {
    const ops = diff({ desired: [toKernelService({ ...desired, scheduler: 'wlc', schedulerFlags: [] })], actual: [fromKernel(dumped)!], owned: () => true });
    assert.deepEqual(ops.map(toIpvsOp), [
      { op: 'edit-service', service: { address: '2001:db8::5', protocol: 'tcp', port: 443, scheduler: 'wlc', schedulerFlags: [], persistence: { timeout: 600 } } },
    ]);
  });

  it('ignores fwmark services (never ours) and extracts VIPs from keys', () => {
    assert.equal(fromKernel({ ...dumped, service: { ...dumped.service, fwmark: 7, address: undefined, protocol: undefined } }), undefined);
    assert.equal(vipOfKey('TCP/[2001:db8::5]:443'), '2001:db8::5');
    assert.equal(vipOfKey('UDP/192.0.2.1:53'), '192.0.2.1');
  });

  it('sameAsDumped answers what comparing with fromKernel answers, for any pair and any destination order', () => {
    const dest = fc.record({ a: fc.nat(3), port: fc.constantFrom(80, 443), weight: fc.nat(2), forwarding: fc.constantFrom('dr' as const, 'nat' as const, 'tun' as const) });
    const svc = fc.record({
      scheduler: fc.constantFrom('rr', 'mh', 'sh'), flags: fc.subarray(['flag-1', 'flag-2', 'flag-3'] as const), timeout: fc.option(fc.constantFrom(60, 600), { nil: undefined }),
      port: fc.constantFrom(80, 81), dests: fc.uniqueArray(dest, { selector: (d) => `${d.a}|${d.port}`, maxLength: 5 }),
    });
    const dumpedOf = (x: typeof svc extends fc.Arbitrary<infer T> ? T : never): ServiceWithDests => ({
      service: { ...dumped.service, family: 4, address: '192.0.2.5', port: x.port, scheduler: x.scheduler, schedulerFlags: [...x.flags], persistence: x.timeout === undefined ? undefined : { timeout: x.timeout, netmask: '255.255.255.255' } },
      destinations: x.dests.map((d) => ({ ...dumped.destinations[0]!, family: 4, address: `198.51.100.${d.a}`, port: d.port, weight: d.weight, forwarding: d.forwarding })),
    });
    // The second one is the first reordered, then changed in one way or none: near pairs are the ones that matter.
    const change = fc.constantFrom('none', 'weight', 'forwarding', 'port', 'drop', 'add', 'scheduler', 'flag', 'timeout', 'service port', 'other');
    fc.assert(fc.property(svc, svc, change, fc.nat(), (x, y, how, seed) => {
      const a = dumpedOf(x);
      const b: ServiceWithDests = how === 'other' ? dumpedOf(y) : { service: { ...a.service }, destinations: a.destinations.map((d) => ({ ...d })) };
      b.destinations.sort((p, q) => ((p.weight * 7 + p.port + Number(p.address.slice(-1)) + seed) % 5) - ((q.weight * 7 + q.port + Number(q.address.slice(-1)) + seed) % 5));
      const d = b.destinations[seed % Math.max(1, b.destinations.length)];
      if (how === 'weight' && d) d.weight += 1;
      if (how === 'forwarding' && d) d.forwarding = d.forwarding === 'dr' ? 'nat' : 'dr';
      if (how === 'port' && d) d.port += 1000;
      if (how === 'drop') b.destinations.splice(seed % Math.max(1, b.destinations.length), 1);
      if (how === 'add') b.destinations.push({ ...dumped.destinations[0]!, family: 4, address: '198.51.100.9', port: 80 });
      if (how === 'scheduler') b.service.scheduler = b.service.scheduler === 'rr' ? 'wrr' : 'rr';
      if (how === 'flag') b.service.schedulerFlags = b.service.schedulerFlags.includes('flag-2') ? b.service.schedulerFlags.filter((f) => f !== 'flag-2') : [...b.service.schedulerFlags, 'flag-2'];
      if (how === 'timeout') b.service.persistence = b.service.persistence ? undefined : { timeout: 60, netmask: '255.255.255.255' };
      if (how === 'service port') b.service.port += 1;
      const k = fromKernel(a)!;
      assert.equal(sameAsDumped(k, b), sameService(k, fromKernel(b)!) && dumpedKey(b) === k.key, `${how}: ${JSON.stringify(k)} vs ${JSON.stringify(fromKernel(b))}`);
    }), { numRuns: 3000 });
    assert.equal(dumpedKey({ ...dumped, service: { ...dumped.service, fwmark: 7, address: undefined, protocol: undefined } }), undefined);
  });
});
