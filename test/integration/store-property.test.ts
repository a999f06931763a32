// Property-based test of the allocator and its ledger together: random sequences of Service creates,
// deletes and edits (ports, requested address, sharing key, pool annotation, families), daemon restarts
// (reload from the real SQLite file), pool edits and the passing of time. After every step:
// - no address is on two Services unless they share it on purpose (same key, disjoint ports);
// - a Service whose request was satisfied keeps its addresses through any step that does not edit it;
// - avoidBuggyIPs, serviceAllocation selectors, autoAssign and requested pools/addresses hold for every
//   new allocation, and a fresh automatic address is exactly the one a naive scan finds;
// - no address is handed to another Service during its quarantine;
// - what a restart loads from disk is exactly what the allocator held.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import type { PoolConfig } from '../../src/config/types.js';
import { type Family, formatIp } from '../../src/ipam/address.js';
import { orderPools, poolAllows } from '../../src/ipam/pools.js';
import { isBuggyIPv4, isSubnetRouterAnycast } from '../../src/ipam/range.js';
import type { Allocation, Change, ServiceRequest } from '../../src/ipam/types.js';
import { DurableIpam } from '../../src/store/allocator.js';
import { poolsFrom, svc, type SvcOpts } from '../unit/ipam-fixtures.js';

const QUARANTINE_S = 60;
const variants: PoolConfig[][] = [
  poolsFrom(`
  - name: p1
    avoidBuggyIPs: true
    addresses: [192.0.2.0/29, '2001:db8::/126']
  - name: p2
    avoidBuggyIPs: true
    addresses: [198.51.100.252/30, 198.51.100.0/31]
    serviceAllocation: {priority: 1, namespaces: [ns-a]}
  - name: manual
    autoAssign: false
    addresses: [203.0.113.0/30]
`),
  poolsFrom(`
  - name: p1
    avoidBuggyIPs: true
    addresses: [192.0.2.0/30, 192.0.2.16/30, '2001:db8::/126', '2001:db8::10/127']
  - name: p2
    addresses: [198.51.100.252/30]
  - name: manual
    autoAssign: false
    addresses: [203.0.113.0/30]
`),
  poolsFrom(`
  - name: p3
    addresses: [203.0.113.128/30]
    serviceAllocation:
      priority: 2
      serviceSelectors: [{matchExpressions: [{key: class, operator: In, values: [x]}]}]
  - name: p1
    addresses: [192.0.2.0/29, '2001:db8::/126']
  - name: manual
    autoAssign: false
    addresses: [203.0.113.0/30]
`),
];

interface Spec {
  ports: number[];
  ip: string | undefined;
  key: string | undefined;
  pool: string | undefined;
  fam: 'v4' | 'v6' | 'prefer' | 'require';
  cls: boolean;
}
type Op =
  | { kind: 'create' | 'edit'; slot: number; spec: Spec }
  | { kind: 'delete'; slot: number }
  | { kind: 'restart' }
  | { kind: 'pools'; variant: number }
  | { kind: 'tick'; ms: number };

const specArb: fc.Arbitrary<Spec> = fc.record({
  ports: fc.subarray([80, 443, 53], { minLength: 1 }),
  // Mostly plain Services, so that pools fill up and addresses get recycled.
  ip: fc.oneof(
    { weight: 6, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.constantFrom('192.0.2.3', '192.0.2.0', '198.51.100.255', '198.51.100.253', '203.0.113.2', '203.0.113.129', '2001:db8::2', '192.0.2.200') },
  ),
  key: fc.oneof({ weight: 2, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom('k1', 'k2') }),
  pool: fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom('p1', 'p2', 'manual', 'p3', 'nope') }),
  fam: fc.constantFrom('v4' as const, 'v4' as const, 'v4' as const, 'v6' as const, 'prefer' as const, 'require' as const),
  cls: fc.boolean(),
});
const slotArb = fc.nat(7);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('create' as const), slot: slotArb, spec: specArb }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('edit' as const), slot: slotArb, spec: specArb }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), slot: slotArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('restart' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('pools' as const), variant: fc.nat(variants.length - 1) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 90_000 }) }) },
);

function request(uid: string, slot: number, s: Spec): ServiceRequest | undefined {
  const annotations: Record<string, string> = {};
  if (s.ip) annotations['ipvs-lb.io/load-balancer-ips'] = s.ip;
  if (s.key) annotations['ipvs-lb.io/allow-shared-ip'] = s.key;
  if (s.pool) annotations['ipvs-lb.io/address-pool'] = s.pool;
  const o: SvcOpts = { ns: slot % 2 ? 'ns-a' : 'ns-b', name: `svc${slot}`, annotations, ports: s.ports, labels: s.cls ? { class: 'x' } : {} };
  if (s.fam === 'v4') o.ipFamilies = ['IPv4'];
  if (s.fam === 'v6') o.ipFamilies = ['IPv6'];
  if (s.fam === 'prefer' || s.fam === 'require') {
    o.ipFamilies = ['IPv4', 'IPv6'];
    o.policy = s.fam === 'prefer' ? 'PreferDualStack' : 'RequireDualStack';
  }
  try {
    return svc(uid, o);
  } catch {
    return undefined; // An InvalidAnnotation: the watcher reports it and never calls the allocator.
  }
}

const rowKey = (a: Allocation) => `${a.uid}|${a.family}|${a.address}|${a.pool}|${a.sharingKey ?? ''}|${a.ports.join(',')}`;

/** The reference allocator: scan every address of the candidate pools in order (pools here are tiny). */
function naiveLowest(pools: PoolConfig[], req: ServiceRequest, family: Family, taken: Set<string>): string | undefined {
  const candidates = req.requestedPool !== undefined ? pools.filter((p) => p.name === req.requestedPool) : orderPools(pools).filter((p) => p.autoAssign && poolAllows(p, req));
  for (const p of candidates) {
    const ranges = p.addresses.filter((r) => r.family === family).sort((a, b) => (a.first < b.first ? -1 : 1));
    for (const r of ranges) {
      for (let v = r.first; v <= r.last; v++) {
        if ((p.avoidBuggyIPs && isBuggyIPv4(family, v)) || isSubnetRouterAnycast(r, v)) continue;
        const text = formatIp({ family, value: v });
        if (!taken.has(text)) return text;
      }
    }
  }
  return undefined;
}

describe('allocator + ledger properties', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ipvs-lb-prop-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let run = 0;
  const seen = { steps: 0, allocations: 0, lowestChecked: 0, restarts: 0, refusals: new Map<string, number>() };
  after(() => {
    if (process.env.DEBUG_PROP) console.error({ ...seen, refusals: Object.fromEntries(seen.refusals) });
  });

  it('hold after every step of random create/edit/delete/restart/pool-edit/time sequences', () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 10, maxLength: 40 }), (ops) => {
        const path = join(dir, `run-${run++}.db`);
        let now = Date.UTC(2026, 0, 1);
        let pools = variants[0]!;
        let d = DurableIpam.open({ path, host: 'lb-a', pools, quarantineSeconds: QUARANTINE_S, now });
        const live = new Map<number, { uid: string; spec: Spec; req: ServiceRequest }>();
        const gens = new Map<number, number>();
        const quarantine = new Map<string, { until: number; by: string }>();
        try {
          for (const op of ops) {
            const before = new Map<string, string[]>();
            for (const s of live.values()) if (d.ipam.isSatisfied(s.req)) before.set(s.uid, d.ipam.allocationsOf(s.uid).map((a) => a.address));
            const taken = new Set<string>([...d.ipam.allocations()].map((a) => a.address));
            for (const q of d.ipam.quarantined()) if (q.until > now) taken.add(q.address);
            let subject: string | undefined;
            const changes: Change[] = [];
            let fresh: ServiceRequest | undefined;

            if (op.kind === 'create' || op.kind === 'edit') {
              const cur = live.get(op.slot);
              if (op.kind === 'create' && cur) continue;
              if (op.kind === 'edit' && !cur) continue;
              const gen = gens.get(op.slot) ?? 0;
              const uid = cur?.uid ?? `u${op.slot}-${gen}`;
              const req = request(uid, op.slot, op.spec);
              if (!req) continue;
              if (cur && JSON.stringify(cur.spec) !== JSON.stringify(op.spec)) subject = uid;
              live.set(op.slot, { uid, spec: op.spec, req });
              const [dec] = d.ensure([req], { now, term: 1 });
              if (dec!.refusal) seen.refusals.set(dec!.refusal.reason, (seen.refusals.get(dec!.refusal.reason) ?? 0) + 1);
              changes.push(...dec!.changes);
              fresh = req;
            } else if (op.kind === 'delete') {
              const cur = live.get(op.slot);
              if (!cur) continue;
              subject = cur.uid;
              live.delete(op.slot);
              gens.set(op.slot, (gens.get(op.slot) ?? 0) + 1);
              changes.push(...d.release([{ uid: cur.uid, reason: 'Deleted' }], { now, term: 1 }));
              assert.deepEqual(d.ipam.allocationsOf(cur.uid), []);
            } else if (op.kind === 'restart') {
              const held = [...d.ipam.allocations()].map(rowKey).sort();
              d.close();
              d = DurableIpam.open({ path, host: 'lb-a', pools, quarantineSeconds: QUARANTINE_S, now });
              assert.deepEqual([...d.ipam.allocations()].map(rowKey).sort(), held, 'the ledger gives back exactly what was held');
              seen.restarts++;
              const report = d.start([...live.values()].map((s) => s.req), { now, term: 2, allocateNew: true });
              assert.deepEqual(report.released, [], 'no live Service is released at start-up');
              for (const x of [...report.confirmed, ...report.decided]) changes.push(...x.changes);
            } else if (op.kind === 'pools') {
              pools = variants[op.variant]!;
              d.reloadPools(pools, { quarantineSeconds: QUARANTINE_S }, { now, term: 1 });
            } else if (op.kind === 'tick') {
              now += op.ms;
            }

            seen.steps++;
            // No unintended duplicate.
            const byAddr = new Map<string, Allocation[]>();
            for (const a of d.ipam.allocations()) byAddr.set(a.address, [...(byAddr.get(a.address) ?? []), a]);
            for (const [addr, list] of byAddr) {
              if (list.length < 2) continue;
              assert.ok(list.every((a) => a.sharingKey !== undefined && a.sharingKey === list[0]!.sharingKey), `${addr} on ${list.map((a) => a.uid)} without a common key`);
              const ports = list.flatMap((a) => a.ports);
              assert.equal(new Set(ports).size, ports.length, `${addr} shared with overlapping ports`);
            }
            // Stable addresses.
            for (const [uid, addrs] of before) {
              if (uid === subject) continue;
              const nowHeld = d.ipam.allocationsOf(uid).map((a) => a.address);
              for (const a of addrs) assert.ok(nowHeld.includes(a), `${uid} lost ${a} in a ${op.kind} step`);
            }
            // Rules for every new allocation.
            const reqByUid = new Map([...live.values()].map((s) => [s.uid, s.req]));
            for (const c of changes) {
              if (c.kind === 'release' && c.quarantine) quarantine.set(c.allocation.address, { until: c.quarantine.until, by: c.quarantine.releasedBy });
              if (c.kind !== 'allocate') continue;
              const a = c.allocation;
              seen.allocations++;
              const req = reqByUid.get(a.uid)!;
              const pool = pools.find((p) => p.name === a.pool);
              assert.ok(pool, `${a.address} allocated from unknown pool ${a.pool}`);
              assert.ok(poolAllows(pool, req), `${a.uid} got ${a.address} from ${pool.name}, which does not serve it`);
              const requested = req.requestedIPs.find((r) => r.family === a.family);
              if (requested) assert.equal(a.address, requested.address);
              if (req.requestedPool !== undefined) assert.equal(a.pool, req.requestedPool);
              if (!pool.autoAssign) assert.ok(req.requestedPool === pool.name || requested, `${a.address} from a manual pool without asking`);
              if (pool.avoidBuggyIPs) assert.ok(!isBuggyIPv4(a.family, a.value), `${a.address} is a buggy IP`);
              const q = quarantine.get(a.address);
              const sharedBefore = taken.has(a.address) && (byAddr.get(a.address)?.length ?? 0) > 1;
              if (q && q.until > now && !sharedBefore) assert.equal(q.by, `${req.namespace}/${req.name}`, `${a.address} reused during its quarantine`);
              quarantine.delete(a.address);
              if (fresh && !requested && req.sharingKey === undefined && c.reason === 'Allocated') {
                seen.lowestChecked++;
                assert.equal(a.address, naiveLowest(pools, req, a.family, taken), `${a.uid} did not get the lowest free address`);
              }
            }
          }
        } catch (err) {
          if (process.env.DEBUG_PROP) console.error(err);
          throw err;
        } finally {
          d.close();
          rmSync(path, { force: true });
        }
      }),
      { numRuns: Number(process.env.IPAM_PROPERTY_RUNS ?? 60) },
    );
  });
});
