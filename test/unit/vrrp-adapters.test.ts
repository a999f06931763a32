import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { IpvsClient } from '../../src/ipvs/index.js';
import type { VipBinder } from '../../src/vip/index.js';
import { parseRange } from '../../src/ipam/range.js';
import type { PoolConfig } from '../../src/config/types.js';
import { planSyncDaemons, vipGroupResolver, type SyncDaemonApi, type VipBinderLike } from '../../src/vrrp/adapters.js';
import { groupForVip } from '../../src/vrrp/groups.js';

// Compile-time: the real kernel modules fit the adapters' narrow interfaces.
export const _fits = [(c: IpvsClient): SyncDaemonApi => c, (b: VipBinder): VipBinderLike => b];

const want = { interface: 'eth0', syncId: 1 };
const d = (role: 'master' | 'backup', iface = 'eth0', syncId = 1) => ({ role, interface: iface, syncId });

describe('sync daemon planner', () => {
  it('starts what is missing and stops what is not wanted', () => {
    assert.deepEqual(planSyncDaemons([], { master: true, backup: false }, want), [{ op: 'start', spec: d('master') }]);
    assert.deepEqual(planSyncDaemons([d('master')], { master: false, backup: true }, want), [
      { op: 'stop', role: 'master' },
      { op: 'start', spec: d('backup') },
    ]);
    assert.deepEqual(planSyncDaemons([d('master'), d('backup')], { master: false, backup: false }, want), [
      { op: 'stop', role: 'master' },
      { op: 'stop', role: 'backup' },
    ]);
  });

  it('leaves fitting daemons alone and restarts one on another interface or sync id', () => {
    assert.deepEqual(planSyncDaemons([d('master'), d('backup')], { master: true, backup: true }, want), []);
    assert.deepEqual(planSyncDaemons([d('backup', 'eth1')], { master: false, backup: true }, want), [
      { op: 'stop', role: 'backup' },
      { op: 'start', spec: d('backup') },
    ]);
    assert.deepEqual(planSyncDaemons([d('master', 'eth0', 7)], { master: true, backup: false }, want), [
      { op: 'stop', role: 'master' },
      { op: 'start', spec: d('master') },
    ]);
  });
});

describe('VIP → group resolver', () => {
  const range = (t: string) => {
    const r = parseRange(t);
    if (!r.ok) throw new Error(r.error);
    return r.range;
  };
  const pool = (name: string, cidr: string, vrrpGroup: string | undefined): PoolConfig => ({
    name, addresses: [range(cidr)], avoidBuggyIPs: false, autoAssign: true, serviceAllocation: undefined, forwarding: undefined, scheduler: undefined, vrrpGroup,
  });
  it("uses the pool's group, and the hash for pools without one and for addresses in no pool", () => {
    const groupOf = vipGroupResolver([pool('pa', '192.0.2.0/28', 'b'), pool('px', '198.51.100.0/24', undefined), pool('p6', '2001:db8::/64', 'a')], ['a', 'b']);
    assert.equal(groupOf('192.0.2.3'), 'b');
    assert.equal(groupOf('2001:db8::7'), 'a');
    assert.equal(groupOf('198.51.100.77'), groupForVip('198.51.100.77', undefined, ['a', 'b']));
    assert.equal(groupOf('203.0.113.1'), groupForVip('203.0.113.1', undefined, ['a', 'b']));
  });
});
