import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ServiceWithDests } from '../../src/ipvs/index.js';
import type { Stats } from '../../src/ipvs/types.js';
import { diff, toKernelService } from '../../src/reconcile/diff.js';
import { fromKernel, toIpvsOp } from '../../src/reconcile/kernel-map.js';
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
});
