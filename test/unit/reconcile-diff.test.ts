import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { changedServices, diff, toKernelService } from '../../src/reconcile/diff.js';
import type { DesiredVirtualService } from '../../src/model/types.js';
import type { KernelDestination, KernelService, Operation } from '../../src/reconcile/types.js';

function svc(key: string, dests: Array<[string, number]>, over: Partial<KernelService> = {}): KernelService {
  const [proto, rest] = key.split('/') as [KernelService['protocol'], string];
  const [address, port] = rest.split(':');
  return {
    key, family: 4, protocol: proto, address: address!, port: Number(port), scheduler: 'mh', schedulerFlags: ['mh-fallback', 'mh-port'],
    persistenceTimeoutSeconds: undefined,
    destinations: dests.map(([a, w]) => ({ address: a, port: Number(port), weight: w, forwarding: 'dr' })), ...over,
  };
}

/** Applies operations to a table the way IPVS does, failing on the errors the kernel would return. */
function apply(table: KernelService[], ops: Operation[]): KernelService[] {
  const m = new Map(table.map((s) => [s.key, { ...s, destinations: [...s.destinations] }]));
  const dk = (d: KernelDestination) => `${d.address}:${d.port}`;
  for (const o of ops) {
    const s = m.get(o.service.key);
    switch (o.op) {
      case 'add-service':
        assert.ok(!s, `EEXIST ${o.service.key}`);
        m.set(o.service.key, { ...o.service, destinations: [] });
        break;
      case 'update-service':
        assert.ok(s, `ESRCH ${o.service.key}`);
        Object.assign(s, { scheduler: o.service.scheduler, schedulerFlags: o.service.schedulerFlags, persistenceTimeoutSeconds: o.service.persistenceTimeoutSeconds });
        break;
      case 'delete-service':
        assert.ok(s, `ESRCH ${o.service.key}`);
        m.delete(o.service.key);
        break;
      case 'add-destination':
        assert.ok(s, `ESRCH ${o.service.key}`);
        assert.ok(!s.destinations.some((d) => dk(d) === dk(o.destination)), 'EEXIST dest');
        s.destinations.push(o.destination);
        break;
      case 'update-destination': {
        assert.ok(s, `ESRCH ${o.service.key}`);
        const i = s.destinations.findIndex((d) => dk(d) === dk(o.destination));
        assert.ok(i >= 0, 'ENOENT dest');
        s.destinations[i] = o.destination;
        break;
      }
      case 'delete-destination': {
        assert.ok(s, `ESRCH ${o.service.key}`);
        const before = s.destinations.length;
        s.destinations = s.destinations.filter((d) => dk(d) !== dk(o.destination));
        assert.equal(s.destinations.length, before - 1, 'ENOENT dest');
        break;
      }
    }
  }
  return [...m.values()];
}

const norm = (t: KernelService[]) =>
  t.map((s) => ({ ...s, destinations: [...s.destinations].sort((a, b) => (a.address < b.address ? -1 : 1)) })).sort((a, b) => (a.key < b.key ? -1 : 1));

describe('reconcile diff', () => {
  it('makes no operation when the kernel already holds the desired state', () => {
    const t = [svc('TCP/192.0.2.1:80', [['198.51.100.21', 1], ['198.51.100.22', 1]])];
    assert.deepEqual(diff({ desired: t, actual: structuredClone(t), owned: () => true }), []);
  });

  it('changes weight and scheduler in place instead of deleting and re-adding', () => {
    const have = [svc('TCP/192.0.2.1:80', [['198.51.100.21', 1], ['198.51.100.22', 1]])];
    const want = [svc('TCP/192.0.2.1:80', [['198.51.100.21', 1], ['198.51.100.22', 0]], { scheduler: 'wlc', schedulerFlags: [] })];
    const ops = diff({ desired: want, actual: have, owned: () => true });
    assert.deepEqual(ops.map((o) => `${o.op} ${'changed' in o ? o.changed.join('+') : ''}`), ['update-service scheduler+schedulerFlags', 'update-destination weight']);
  });

  it('never touches a foreign service, and deletes an owned one without deleting its destinations one by one', () => {
    const have = [svc('TCP/192.0.2.1:80', [['198.51.100.21', 1]]), svc('TCP/203.0.113.9:22', [['198.51.100.99', 1]])];
    const ops = diff({ desired: [], actual: have, owned: (k) => k.startsWith('TCP/192.0.2.') });
    assert.deepEqual(ops.map((o) => `${o.op} ${o.service.key}`), ['delete-service TCP/192.0.2.1:80']);
  });

  it('orders service additions before their destinations and removals last', () => {
    const have = [svc('TCP/192.0.2.1:80', [['198.51.100.21', 1]])];
    const want = [svc('TCP/192.0.2.2:80', [['198.51.100.21', 1]])];
    const ops = diff({ desired: want, actual: have, owned: () => true });
    assert.deepEqual(ops.map((o) => o.op), ['add-service', 'add-destination', 'delete-service']);
  });

  it('for any tables, applying the diff yields the desired table plus the untouched foreign services', () => {
    const addr = fc.constantFrom('198.51.100.21', '198.51.100.22', '198.51.100.23', '198.51.100.24');
    const dests = fc.uniqueArray(fc.tuple(addr, fc.integer({ min: 0, max: 3 })), { selector: (d) => d[0], maxLength: 4 });
    const key = fc.constantFrom('TCP/192.0.2.1:80', 'TCP/192.0.2.1:443', 'UDP/192.0.2.2:53', 'TCP/203.0.113.5:80', 'TCP/203.0.113.6:22');
    const table = fc.uniqueArray(
      fc.tuple(key, dests, fc.constantFrom('mh', 'wlc'), fc.option(fc.constantFrom(60, 600), { nil: undefined })),
      { selector: (t) => t[0], maxLength: 5 },
    ).map((rows) => rows.map(([k, d, sched, p]) => svc(k, d, { scheduler: sched, schedulerFlags: sched === 'mh' ? ['mh-port'] : [], persistenceTimeoutSeconds: p })));
    const isOurs = (k: string) => k.includes('192.0.2.');
    fc.assert(fc.property(table, table, (actual, desiredAll) => {
      const desired = desiredAll.filter((s) => isOurs(s.key));
      const ops = diff({ desired, actual, owned: isOurs });
      const result = apply(actual, ops);
      const foreign = actual.filter((s) => !isOurs(s.key));
      assert.deepEqual(norm(result), norm([...desired, ...foreign]));
      // A second pass finds nothing left to do.
      assert.deepEqual(diff({ desired, actual: result, owned: isOurs }), []);
    }), { numRuns: 500 });
  });

  it('comparing desired services to the kernel directly finds exactly the ones whose kernel form differs', () => {
    const addr = fc.constantFrom('198.51.100.21', '198.51.100.22', '198.51.100.23');
    const rs = fc.uniqueArray(fc.tuple(addr, fc.integer({ min: 0, max: 2 })), { selector: (d) => d[0], maxLength: 3 });
    const key = fc.constantFrom('TCP/192.0.2.1:80', 'TCP/192.0.2.1:443', 'UDP/192.0.2.2:53');
    const desiredT = fc.uniqueArray(fc.tuple(key, rs, fc.constantFrom('mh', 'wlc'), fc.constantFrom<'dr' | 'tun'>('dr', 'tun'), fc.boolean()), { selector: (t) => t[0], maxLength: 3 })
      .map((rows) => rows.map(([k, r, sched, fwd, rev]): DesiredVirtualService => {
        const [proto, rest] = k.split('/') as ['TCP' | 'UDP', string];
        const [vip, port] = rest.split(':');
        const servers = r.map(([a, w]) => ({ address: a, port: Number(port), weight: w, node: a, state: 'serving' as const }));
        return {
          key: k, vip: vip!, family: 4, protocol: proto, port: Number(port), scheduler: sched, schedulerFlags: sched === 'mh' ? ['mh-port', 'mh-fallback'] : [],
          persistenceTimeoutSeconds: undefined, forwarding: fwd, service: 'd/s', serviceUid: 'u', pool: 'p', vrrpGroup: undefined, realServers: rev ? servers.reverse() : servers,
        };
      }));
    fc.assert(fc.property(desiredT, desiredT, fc.boolean(), (desired, other, reverseKernel) => {
      // The kernel holds another table, or this one with destinations listed newest first.
      const kernelList = other.map(toKernelService).map((k) => (reverseKernel ? { ...k, destinations: [...k.destinations].reverse() } : k));
      const kernel = new Map(kernelList.map((k) => [k.key, k]));
      const { changed, keys } = changedServices(desired, kernel);
      assert.deepEqual(diff({ desired: changed, desiredKeys: keys, actual: kernel, owned: () => true }), diff({ desired: desired.map(toKernelService), actual: kernelList, owned: () => true }));
      assert.deepEqual(changedServices(desired, new Map(desired.map(toKernelService).map((k) => [k.key, k]))).changed, [], 'a table compared with itself has no change');
    }), { numRuns: 500 });
  });

  it('skipping entries unchanged since the last pass finds the same operations as comparing everything', () => {
    const addr = fc.constantFrom('198.51.100.21', '198.51.100.22', '198.51.100.23');
    const rs = fc.uniqueArray(fc.tuple(addr, fc.integer({ min: 0, max: 2 })), { selector: (d) => d[0], maxLength: 3 });
    const key = fc.constantFrom('TCP/192.0.2.1:80', 'TCP/192.0.2.1:443', 'UDP/192.0.2.2:53', 'TCP/192.0.2.3:80');
    const table = fc.uniqueArray(fc.tuple(key, rs, fc.constantFrom('mh', 'wlc'), fc.constantFrom<'dr' | 'tun'>('dr', 'tun'), fc.constantFrom(undefined, 300)), { selector: (t) => t[0], maxLength: 4 })
      .map((rows) => rows.map(([k, r, sched, fwd, persist]): DesiredVirtualService => {
        const [proto, rest] = k.split('/') as ['TCP' | 'UDP', string];
        const [vip, port] = rest.split(':');
        return {
          key: k, vip: vip!, family: 4, protocol: proto, port: Number(port), scheduler: sched, schedulerFlags: sched === 'mh' ? ['mh-fallback', 'mh-port'] : [],
          persistenceTimeoutSeconds: persist, forwarding: fwd, service: 'd/s', serviceUid: 'u', pool: 'p', vrrpGroup: undefined,
          realServers: r.map(([a, w]) => ({ address: a, port: Number(port), weight: w, node: a, state: 'serving' as const })),
        };
      }));
    // How a new entry relates to the last pass's entry of the same key: generated anew, the same object, a
    // copy sharing its real-server list, or a copy with an equal list of new objects.
    const reuse = fc.array(fc.constantFrom(0, 1, 2, 3), { minLength: 4, maxLength: 4 });
    fc.assert(fc.property(table, table, reuse, (before, generated, modes) => {
      const last = new Map(before.map((v) => [v.key, v]));
      const desired = generated.map((v, i) => {
        const p = last.get(v.key);
        if (!p || modes[i] === 0) return v;
        if (modes[i] === 1) return p;
        if (modes[i] === 2) return { ...p };
        return { ...p, realServers: p.realServers.map((r) => ({ ...r })) };
      });
      // The kernel as the last pass left it, and that pass's entries.
      const kernelList = before.map(toKernelService);
      const kernel = new Map(kernelList.map((k) => [k.key, k]));
      const synced = new Map(last);
      const scan = changedServices(desired, kernel, synced);
      const ops = diff({ desired: scan.changed, desiredKeys: scan.keys, noRemovals: scan.coversKernel, actual: kernel, owned: () => true });
      assert.deepEqual(ops, diff({ desired: desired.map(toKernelService), actual: kernelList, owned: () => true }));
      const asks = (v: DesiredVirtualService) => JSON.stringify([v.scheduler, v.forwarding, v.persistenceTimeoutSeconds ?? null, v.realServers.map((r) => [r.address, r.port, r.weight])]);
      const askOther = desired.filter((v) => !last.has(v.key) || asks(last.get(v.key)!) !== asks(v));
      assert.equal(scan.compared, askOther.length, 'only entries that ask for something else are compared');
      assert.deepEqual([...synced.keys()].sort(), desired.map((v) => v.key).sort(), 'the map now holds this pass\'s entries');
    }), { numRuns: 1000 });
  });
});
