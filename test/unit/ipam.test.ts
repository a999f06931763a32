import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseIp } from '../../src/ipam/address.js';
import { Ipam } from '../../src/ipam/engine.js';
import { orderPools } from '../../src/ipam/pools.js';
import { parseService, parseServiceLeniently } from '../../src/ipam/service.js';
import type { Decision } from '../../src/ipam/types.js';
import { poolsFrom, serviceLike, svc } from './ipam-fixtures.js';

const T0 = Date.UTC(2026, 0, 1);
const addrs = (d: Decision) => d.allocations.map((a) => a.address);
const ok = (d: Decision) => {
  assert.equal(d.ok, true, d.refusal?.message);
  return addrs(d);
};
const refused = (d: Decision, reason: string) => {
  assert.equal(d.ok, false, `expected ${reason}, got ${addrs(d).join(',')}`);
  assert.equal(d.refusal?.reason, reason, d.refusal?.message);
  return d.refusal!;
};

// The seed document's pools, each in its own config because they overlap.
const seedMain = poolsFrom(`
  - name: address-pool-1
    avoidBuggyIPs: true
    addresses: [192.0.2.0/24, 198.51.100.1-198.51.100.3]
`);
const seedManual = poolsFrom(`
  - name: my-address-pool-2
    autoAssign: false
    addresses: [192.0.2.73-192.0.2.80]
`);
const seedIngress = poolsFrom(`
  - name: address-pool-1
    avoidBuggyIPs: true
    addresses: [172.16.40.100/32, 172.16.40.101-172.16.40.112]
`);

describe('annotation parser', () => {
  it('leniently, leaves out the ipvs-lb.io annotations that do not parse, and gives up on a bad spec field', () => {
    const bad = serviceLike('u9', { annotations: { 'ipvs-lb.io/load-balancer-ips': 'not-an-ip', 'ipvs-lb.io/allow-shared-ip': 'k1', 'ipvs-lb.io/address-pool': '%%' } });
    assert.equal(parseService(bad).ok, false);
    const r = parseServiceLeniently(bad);
    assert.deepEqual([r?.requestedIPs, r?.sharingKey, r?.requestedPool], [[], 'k1', undefined]);
    assert.equal(parseServiceLeniently(serviceLike('u9', { ports: [['QUIC', 443]] })), undefined);
  });

  it('reads every field IPAM needs', () => {
    const r = parseService(
      serviceLike('u1', {
        ns: 'web', name: 'front', labels: { app: 'x' },
        annotations: { 'ipvs-lb.io/load-balancer-ips': '192.0.2.7, 2001:DB8::0:7', 'ipvs-lb.io/address-pool': 'p', 'ipvs-lb.io/allow-shared-ip': 'k1' },
        ipFamilies: ['IPv6', 'IPv4'], policy: 'RequireDualStack', ports: [443, ['UDP', 53], 80, 443], externalTrafficPolicy: 'Local',
      }),
      { team: 'a' },
    );
    assert.ok(r.ok);
    const s = r.service;
    assert.deepEqual(s.requestedIPs.map((x) => x.address), ['192.0.2.7', '2001:db8::7']);
    assert.equal(s.requestedPool, 'p');
    assert.equal(s.sharingKey, 'k1');
    assert.deepEqual(s.ipFamilies, [6, 4]);
    assert.deepEqual(s.ports, ['TCP/443', 'TCP/80', 'UDP/53']);
    assert.equal(s.externalTrafficPolicy, 'Local');
    assert.deepEqual(s.namespaceLabels, { team: 'a' });
  });

  const bad: [string, Record<string, unknown>, string, string][] = [
    ['a non-address in the list', { annotations: { 'ipvs-lb.io/load-balancer-ips': '192.0.2.1,nope' } }, 'ipvs-lb.io/load-balancer-ips', '192.0.2.1,nope'],
    ['two addresses of one family', { annotations: { 'ipvs-lb.io/load-balancer-ips': '192.0.2.1,192.0.2.2' }, policy: 'PreferDualStack' }, 'ipvs-lb.io/load-balancer-ips', '192.0.2.1,192.0.2.2'],
    ['an empty item', { annotations: { 'ipvs-lb.io/load-balancer-ips': '192.0.2.1,' } }, 'ipvs-lb.io/load-balancer-ips', '192.0.2.1,'],
    ['a list that contradicts spec.loadBalancerIP', { annotations: { 'ipvs-lb.io/load-balancer-ips': '192.0.2.1' }, loadBalancerIP: '192.0.2.2' }, 'ipvs-lb.io/load-balancer-ips', '192.0.2.1'],
    ['a bad spec.loadBalancerIP', { loadBalancerIP: '192.0.2.300' }, 'spec.loadBalancerIP', '192.0.2.300'],
    ['an empty sharing key', { annotations: { 'ipvs-lb.io/allow-shared-ip': ' ' } }, 'ipvs-lb.io/allow-shared-ip', ' '],
    ['a pool name with a space', { annotations: { 'ipvs-lb.io/address-pool': 'a b' } }, 'ipvs-lb.io/address-pool', 'a b'],
    ['an IPv6 request on an IPv4 single-stack Service', { annotations: { 'ipvs-lb.io/load-balancer-ips': '2001:db8::1' }, ipFamilies: ['IPv4'] }, 'ipvs-lb.io/load-balancer-ips', '2001:db8::1'],
    ['an unknown ipFamilyPolicy', { policy: 'Dual' }, 'spec.ipFamilyPolicy', 'Dual'],
  ];
  for (const [what, opts, annotation, value] of bad) {
    it(`refuses ${what} as InvalidAnnotation naming ${annotation} and the value`, () => {
      const r = parseService(serviceLike('u', opts));
      assert.equal(r.ok, false);
      if (r.ok) return;
      assert.equal(r.refusal.reason, 'InvalidAnnotation');
      assert.equal(r.refusal.annotation, annotation);
      assert.equal(r.refusal.value, value);
      assert.ok(r.refusal.message.includes(annotation) && r.refusal.message.includes(JSON.stringify(value)), r.refusal.message);
    });
  }

  it('infers the family from a requested address when ipFamilies is absent', () => {
    const r = parseService(serviceLike('u', { loadBalancerIP: '2001:db8::5' }));
    assert.ok(r.ok);
    assert.deepEqual(r.service.ipFamilies, [6]);
  });
});

describe('seed pools', () => {
  it('192.0.2.0/24 + 198.51.100.1-198.51.100.3 with avoidBuggyIPs: lowest first, never .0 or .255, then exhausted', () => {
    const ipam = new Ipam(seedMain, { quarantineSeconds: 60 });
    const got: string[] = [];
    for (let i = 0; i < 257; i++) got.push(...ok(ipam.ensure(svc(`s${i}`), T0)));
    assert.equal(got[0], '192.0.2.1');
    assert.equal(got[253], '192.0.2.254');
    assert.deepEqual(got.slice(254), ['198.51.100.1', '198.51.100.2', '198.51.100.3']);
    assert.ok(!got.includes('192.0.2.0') && !got.includes('192.0.2.255'));
    assert.equal(new Set(got).size, 257);
    const r = refused(ipam.ensure(svc('one-too-many'), T0), 'PoolExhausted');
    assert.match(r.message, /address-pool-1/);
    assert.equal(ipam.poolStats()[0]!.size, 257n);
    assert.equal(ipam.poolStats()[0]!.used, 257);
  });

  it('refuses a requested .0 or .255 in an avoidBuggyIPs pool', () => {
    const ipam = new Ipam(seedMain, { quarantineSeconds: 60 });
    const r = refused(ipam.ensure(svc('a', { loadBalancerIP: '192.0.2.255' }), T0), 'RequestedAddressOutsidePools');
    assert.match(r.message, /avoidBuggyIPs/);
  });

  it('the manual-only pool 192.0.2.73-192.0.2.80 serves only by name or requested address', () => {
    const ipam = new Ipam(seedManual, { quarantineSeconds: 60 });
    refused(ipam.ensure(svc('auto'), T0), 'PoolNotAllowed');
    assert.deepEqual(ok(ipam.ensure(svc('named', { annotations: { 'ipvs-lb.io/address-pool': 'my-address-pool-2' } }), T0)), ['192.0.2.73']);
    assert.deepEqual(ok(ipam.ensure(svc('asked', { loadBalancerIP: '192.0.2.75' }), T0)), ['192.0.2.75']);
    assert.deepEqual(ok(ipam.ensure(svc('named2', { annotations: { 'ipvs-lb.io/address-pool': 'my-address-pool-2' } }), T0)), ['192.0.2.74']);
    assert.deepEqual(ok(ipam.ensure(svc('named3', { annotations: { 'ipvs-lb.io/address-pool': 'my-address-pool-2' } }), T0)), ['192.0.2.76']);
  });

  it('address-pool-1 with 172.16.40.100/32 and 172.16.40.101-172.16.40.112: the ingress VIP 172.16.40.102 is reserved by request', () => {
    const ipam = new Ipam(seedIngress, { quarantineSeconds: 60 });
    assert.deepEqual(ok(ipam.ensure(svc('ingress', { ns: 'gke-system', name: 'istio-ingress', loadBalancerIP: '172.16.40.102' }), T0)), ['172.16.40.102']);
    const rest: string[] = [];
    for (let i = 0; i < 12; i++) rest.push(...ok(ipam.ensure(svc(`app${i}`), T0)));
    assert.deepEqual(rest.slice(0, 3), ['172.16.40.100', '172.16.40.101', '172.16.40.103']);
    assert.equal(rest.at(-1), '172.16.40.112');
    assert.ok(!rest.includes('172.16.40.102'));
    refused(ipam.ensure(svc('extra'), T0), 'PoolExhausted');
    const r = refused(ipam.ensure(svc('thief', { loadBalancerIP: '172.16.40.102' }), T0), 'RequestedAddressInUse');
    assert.equal(r.conflictsWith, 'gke-system/istio-ingress');
  });
});

describe('pool selection (serviceAllocation)', () => {
  const pools = poolsFrom(`
  - name: general
    addresses: [192.0.2.0/28]
  - name: gold
    addresses: [198.51.100.0/28]
    serviceAllocation:
      priority: 10
      namespaces: [shop]
      namespaceSelectors: [{matchLabels: {tier: gold}}]
  - name: platinum
    addresses: [203.0.113.0/28]
    serviceAllocation:
      priority: 5
      serviceSelectors:
        - matchExpressions: [{key: class, operator: In, values: [platinum]}, {key: legacy, operator: DoesNotExist}]
  - name: manual
    autoAssign: false
    addresses: [203.0.113.64/28]
`);

  it('orders by priority, pools without one last, ties in config order', () => {
    assert.deepEqual(orderPools(pools).map((p) => p.name), ['platinum', 'gold', 'general', 'manual']);
  });

  it('picks the highest-priority pool whose selectors match', () => {
    const ipam = new Ipam(pools, { quarantineSeconds: 60 });
    assert.deepEqual(ok(ipam.ensure(svc('a', { ns: 'other' }), T0)), ['192.0.2.0']);
    assert.deepEqual(ok(ipam.ensure(svc('b', { ns: 'shop' }), T0)), ['198.51.100.0']);
    assert.deepEqual(ok(ipam.ensure(svc('c', { ns: 'x', namespaceLabels: { tier: 'gold' } }), T0)), ['198.51.100.1']);
    assert.deepEqual(ok(ipam.ensure(svc('d', { ns: 'shop', labels: { class: 'platinum' } }), T0)), ['203.0.113.0']);
    assert.deepEqual(ok(ipam.ensure(svc('e', { ns: 'shop', labels: { class: 'platinum', legacy: 'y' } }), T0)), ['198.51.100.2']);
    assert.deepEqual(ok(ipam.ensure(svc('f', { labels: { class: 'bronze' } }), T0)), ['192.0.2.1']);
  });

  it('falls through to the next pool when a better one is exhausted', () => {
    const ipam = new Ipam(pools, { quarantineSeconds: 60 });
    for (let i = 0; i < 16; i++) ok(ipam.ensure(svc(`g${i}`, { ns: 'shop' }), T0));
    assert.deepEqual(ok(ipam.ensure(svc('next', { ns: 'shop' }), T0)), ['192.0.2.0']);
  });

  it('applies selectors to a pool named by annotation or reached through a requested address', () => {
    const ipam = new Ipam(pools, { quarantineSeconds: 60 });
    const r = refused(ipam.ensure(svc('a', { ns: 'other', annotations: { 'ipvs-lb.io/address-pool': 'gold' } }), T0), 'PoolNotAllowed');
    assert.equal(r.pool, 'gold');
    refused(ipam.ensure(svc('b', { ns: 'other', loadBalancerIP: '198.51.100.9' }), T0), 'PoolNotAllowed');
    refused(ipam.ensure(svc('c', { annotations: { 'ipvs-lb.io/address-pool': 'nope' } }), T0), 'UnknownPool');
    refused(ipam.ensure(svc('d', { loadBalancerIP: '192.0.2.200' }), T0), 'RequestedAddressOutsidePools');
    const e = refused(ipam.ensure(svc('e', { loadBalancerIP: '192.0.2.3', annotations: { 'ipvs-lb.io/address-pool': 'manual' } }), T0), 'RequestedAddressOutsidePools');
    assert.match(e.message, /not in the requested pool "manual"/);
    assert.deepEqual(ok(ipam.ensure(svc('f', { annotations: { 'ipvs-lb.io/address-pool': 'manual' } }), T0)), ['203.0.113.64']);
  });
});

describe('sharing', () => {
  const pools = poolsFrom(`
  - name: p
    addresses: [192.0.2.10-192.0.2.20]
`);
  const shared = (uid: string, ports: (number | [string, number])[], extra: Record<string, unknown> = {}) =>
    svc(uid, { annotations: { 'ipvs-lb.io/allow-shared-ip': 'k', ...(extra.annotations as Record<string, string> | undefined) }, ports, ...extra });

  it('shares one address between Services with the same key and disjoint ports, whatever their traffic policy and selectors', () => {
    const ipam = new Ipam(pools, { quarantineSeconds: 60 });
    const a = ok(ipam.ensure(shared('a', [80], { externalTrafficPolicy: 'Local', selector: { app: 'a' } }), T0));
    const b = ok(ipam.ensure(shared('b', [443, ['UDP', 80]], { externalTrafficPolicy: 'Cluster', selector: { app: 'b' } }), T0));
    assert.deepEqual(a, b);
    assert.equal(ipam.holders(4, parseIp('192.0.2.10')!.value).length, 2);
  });

  it('gives a fresh address when the ports overlap, and refuses a requested shared address with the clash', () => {
    const ipam = new Ipam(pools, { quarantineSeconds: 60 });
    ok(ipam.ensure(shared('a', [80]), T0));
    assert.deepEqual(ok(ipam.ensure(shared('b', [80]), T0)), ['192.0.2.11']);
    const r = refused(ipam.ensure(shared('c', [80], { loadBalancerIP: '192.0.2.10' }), T0), 'SharingConflict');
    assert.match(r.message, /TCP\/80 on 192\.0\.2\.10 is already used by default\/a/);
    const k = refused(ipam.ensure(svc('d', { loadBalancerIP: '192.0.2.10', ports: [9], annotations: { 'ipvs-lb.io/allow-shared-ip': 'other' } }), T0), 'SharingConflict');
    assert.match(k.message, /key "k"/);
    refused(ipam.ensure(svc('e', { loadBalancerIP: '192.0.2.10', ports: [9] }), T0), 'RequestedAddressInUse');
  });

  it('moves a Service whose port edit now clashes with its sharing partner, and keeps the partner', () => {
    const ipam = new Ipam(pools, { quarantineSeconds: 60 });
    ok(ipam.ensure(shared('a', [80]), T0));
    ok(ipam.ensure(shared('b', [443]), T0));
    assert.deepEqual(ok(ipam.ensure(shared('b', [443, 80]), T0 + 1)), ['192.0.2.11']);
    assert.deepEqual(addrs({ ...ipam.ensure(shared('a', [80]), T0 + 2) }), ['192.0.2.10']);
  });

  // Found by the soak (docs/soak.md): the allocator decides again only Services that are not satisfied, so an
  // edit that keeps the address (a sole holder dropping its key, changing its ports) never reached the
  // ledger, and the next Service asking to share was judged against the stale record.
  it('a sole holder that drops its key or changes its ports is decided again, so nobody joins on stale facts', () => {
    const ipam = new Ipam(pools, { quarantineSeconds: 60 });
    ok(ipam.ensure(shared('a', [80]), T0));
    const noKey = svc('a', { ports: [80] });
    assert.equal(ipam.isSatisfied(noKey), false, 'the ledger still records key k');
    assert.equal(ipam.factsCurrent(noKey), false);
    assert.deepEqual(ok(ipam.ensure(noKey, T0 + 1)), ['192.0.2.10'], 'it keeps its address');
    assert.equal(ipam.isSatisfied(noKey), true);
    assert.deepEqual(ok(ipam.ensure(shared('b', [443]), T0 + 2)), ['192.0.2.11'], 'b must not share with a Service that dropped its key');

    const c = ipam;
    ok(c.ensure(shared('c', [8080]), T0 + 3));
    assert.deepEqual(c.allocationsOf('c').map((x) => x.address), ['192.0.2.11'], 'c joins b');
    const moved = shared('b', [9090]);
    assert.equal(c.isSatisfied(moved), false, 'a port edit is a fact to record');
    ok(c.ensure(moved, T0 + 4));
    assert.deepEqual(c.allocationsOf('b')[0]!.ports, ['TCP/9090']);
    // d asks for b's old port: fine now, and it is the recorded ports that say so.
    assert.deepEqual(ok(c.ensure(shared('d', [443]), T0 + 5)), ['192.0.2.11']);
    refused(c.ensure(shared('e', [9090], { loadBalancerIP: '192.0.2.11' }), T0 + 6), 'SharingConflict');
  });

  it('keeps a Service on its address when a sharing clash cannot be resolved (requested address)', () => {
    const ipam = new Ipam(pools, { quarantineSeconds: 60 });
    ok(ipam.ensure(shared('a', [80], { loadBalancerIP: '192.0.2.15' }), T0));
    ok(ipam.ensure(shared('b', [443], { loadBalancerIP: '192.0.2.15' }), T0));
    const d = ipam.ensure(shared('b', [443, 80], { loadBalancerIP: '192.0.2.15' }), T0 + 1);
    refused(d, 'SharingConflict');
    assert.deepEqual(addrs(d), ['192.0.2.15']);
    assert.equal(d.changes.length, 0);
  });
});

describe('dual-stack', () => {
  const both = poolsFrom(`
  - name: v4
    addresses: [192.0.2.0/30]
  - name: v6
    addresses: ['2001:db8::/64']
`);
  const v4only = poolsFrom(`
  - name: v4
    addresses: [192.0.2.0/30]
`);

  it('gives one address per family, primary first', () => {
    const ipam = new Ipam(both, { quarantineSeconds: 60 });
    assert.deepEqual(ok(ipam.ensure(svc('a', { policy: 'RequireDualStack', ipFamilies: ['IPv6', 'IPv4'] }), T0)), ['2001:db8::1', '192.0.2.0']);
    assert.deepEqual(ok(ipam.ensure(svc('b', { policy: 'PreferDualStack', ipFamilies: ['IPv4'] }), T0)), ['192.0.2.1', '2001:db8::2']);
    assert.deepEqual(ok(ipam.ensure(svc('c', { ipFamilies: ['IPv6'] }), T0)), ['2001:db8::3']);
  });

  it('PreferDualStack degrades to the family it can get; RequireDualStack fails with FamilyUnavailable', () => {
    const ipam = new Ipam(v4only, { quarantineSeconds: 60 });
    const d = ipam.ensure(svc('a', { policy: 'PreferDualStack' }), T0);
    assert.deepEqual(ok(d), ['192.0.2.0']);
    assert.deepEqual(d.degraded.map((r) => [r.reason, r.family]), [['FamilyUnavailable', 6]]);
    const r = refused(ipam.ensure(svc('b', { policy: 'RequireDualStack' }), T0), 'FamilyUnavailable');
    assert.equal(r.family, 6);
    refused(ipam.ensure(svc('c', { ipFamilies: ['IPv6'] }), T0), 'FamilyUnavailable');
    // Nothing was half-allocated for the refused dual-stack Service.
    assert.deepEqual(ipam.allocationsOf('b'), []);
  });

  it('a PreferDualStack Service gains its second family once a pool offers it, keeping the first', () => {
    const ipam = new Ipam(v4only, { quarantineSeconds: 60 });
    ok(ipam.ensure(svc('a', { policy: 'PreferDualStack' }), T0));
    ipam.setPools(both);
    assert.deepEqual(ok(ipam.ensure(svc('a', { policy: 'PreferDualStack' }), T0)), ['192.0.2.0', '2001:db8::1']);
  });

  it('allocates from a /64 without enumerating it, and from a /32 of IPv6', () => {
    const big = poolsFrom(`
  - name: huge
    addresses: ['2001:db8::/32']
`);
    const ipam = new Ipam(big, { quarantineSeconds: 0 });
    for (let i = 0; i < 2000; i++) ok(ipam.ensure(svc(`s${i}`, { ipFamilies: ['IPv6'] }), T0));
    assert.deepEqual(ok(ipam.ensure(svc('last', { ipFamilies: ['IPv6'] }), T0)), ['2001:db8::7d1']);
    // Less the Subnet-Router anycast address 2001:db8::, never handed out.
    assert.equal(ipam.poolStats()[0]!.size, 2n ** 96n - 1n);
    ipam.release('s5', T0, 'Deleted');
    assert.deepEqual(ok(ipam.ensure(svc('refill', { ipFamilies: ['IPv6'] }), T0)), ['2001:db8::6']);
  });

  it('never hands out the Subnet-Router anycast address of an IPv6 CIDR, and refuses it by request', () => {
    const pools = poolsFrom(`
  - name: v6
    addresses: ['2001:db8:1::/64', '2001:db8:2::/127', '2001:db8:3::-2001:db8:3::1']
`);
    const ipam = new Ipam(pools, { quarantineSeconds: 0 });
    assert.deepEqual(ok(ipam.ensure(svc('a', { ipFamilies: ['IPv6'] }), T0)), ['2001:db8:1::1']);
    const r = ipam.ensure(svc('b', { ipFamilies: ['IPv6'], loadBalancerIP: '2001:db8:1::' }), T0);
    assert.equal(r.ok, false);
    assert.equal(r.refusal?.reason, 'RequestedAddressOutsidePools');
    assert.match(r.refusal?.message ?? '', /^2001:db8:1:: is the Subnet-Router anycast address/);
    // A /127 (RFC 6164 point-to-point) and an a-b range are taken as written.
    assert.deepEqual(ok(ipam.ensure(svc('c', { ipFamilies: ['IPv6'], loadBalancerIP: '2001:db8:2::' }), T0)), ['2001:db8:2::']);
    assert.deepEqual(ok(ipam.ensure(svc('d', { ipFamilies: ['IPv6'], loadBalancerIP: '2001:db8:3::' }), T0)), ['2001:db8:3::']);
    assert.equal(ipam.poolStats()[0]!.size, 2n ** 64n - 1n + 2n + 2n);
  });
});

describe('a Service keeps its address for life', () => {
  const pools = poolsFrom(`
  - name: a
    addresses: [192.0.2.0/29]
  - name: b
    addresses: [198.51.100.0/29]
`);

  it('confirms an unchanged Service without any change, and records a port edit as an update only', () => {
    const ipam = new Ipam(pools, { quarantineSeconds: 60 });
    ok(ipam.ensure(svc('x'), T0));
    const again = ipam.ensure(svc('x'), T0 + 1000);
    assert.deepEqual(again.changes, []);
    const edited = ipam.ensure(svc('x', { ports: [80, 8080] }), T0 + 2000);
    assert.deepEqual(edited.changes.map((c) => c.kind), ['update']);
    assert.deepEqual(addrs(edited), ['192.0.2.0']);
  });

  it('moves to the newly requested address or pool and quarantines the old one', () => {
    const ipam = new Ipam(pools, { quarantineSeconds: 60 });
    ok(ipam.ensure(svc('x'), T0));
    const moved = ipam.ensure(svc('x', { loadBalancerIP: '192.0.2.5' }), T0 + 1);
    assert.deepEqual(ok(moved), ['192.0.2.5']);
    assert.deepEqual(moved.changes.map((c) => c.kind), ['release', 'allocate']);
    assert.ok(ipam.isQuarantined(4, parseIp('192.0.2.0')!.value));
    assert.deepEqual(ok(ipam.ensure(svc('y'), T0 + 2)), ['192.0.2.1']);
    const clash = ipam.ensure(svc('x', { loadBalancerIP: '192.0.2.5', annotations: { 'ipvs-lb.io/address-pool': 'b' } }), T0 + 3);
    refused(clash, 'RequestedAddressOutsidePools');
    assert.deepEqual(addrs(clash), ['192.0.2.5']);
    const toPool = ipam.ensure(svc('x', { annotations: { 'ipvs-lb.io/address-pool': 'b' } }), T0 + 4);
    assert.deepEqual(ok(toPool), ['198.51.100.0']);
    assert.deepEqual(toPool.changes.map((c) => c.kind), ['release', 'allocate']);
  });

  it('refuses a request for an address in use and keeps the old one', () => {
    const ipam = new Ipam(pools, { quarantineSeconds: 60 });
    ok(ipam.ensure(svc('x'), T0));
    ok(ipam.ensure(svc('y'), T0));
    const d = ipam.ensure(svc('x', { loadBalancerIP: '192.0.2.1' }), T0 + 1);
    refused(d, 'RequestedAddressInUse');
    assert.deepEqual(addrs(d), ['192.0.2.0']);
    assert.deepEqual(ipam.allocationsOf('x').map((a) => a.address), ['192.0.2.0']);
  });

  it('survives pool reordering and removal: nothing moves, removed addresses are reported as orphans', () => {
    const ipam = new Ipam(pools, { quarantineSeconds: 60 });
    ok(ipam.ensure(svc('x'), T0));
    ok(ipam.ensure(svc('y', { annotations: { 'ipvs-lb.io/address-pool': 'b' } }), T0));
    ipam.setPools(poolsFrom(`
  - name: b
    addresses: [198.51.100.0/29]
    serviceAllocation: {priority: 1}
  - name: a
    addresses: [192.0.2.4/30, 192.0.2.100/32]
`));
    assert.deepEqual(ok(ipam.ensure(svc('x'), T0 + 1)), ['192.0.2.0']);
    assert.deepEqual([...ipam.orphans()], [['a', [{ address: '192.0.2.0', family: 4, pool: 'a', services: ['default/x'] }]]]);
    // New addresses are usable at once.
    assert.deepEqual(ok(ipam.ensure(svc('z', { loadBalancerIP: '192.0.2.100' }), T0 + 1)), ['192.0.2.100']);
    ipam.setPools(poolsFrom(`
  - name: a
    addresses: [192.0.2.0/29]
`));
    // 192.0.2.100 left pool a, and all of pool b is gone.
    assert.deepEqual([...ipam.orphans()].map(([p, l]) => [p, l.map((o) => o.address)]).sort(), [['a', ['192.0.2.100']], ['b', ['198.51.100.0']]]);
    assert.deepEqual(ok(ipam.ensure(svc('y'), T0 + 2)), ['198.51.100.0']);
    // An orphan is never handed to another Service.
    assert.deepEqual(ok(ipam.ensure(svc('w', { annotations: { 'ipvs-lb.io/address-pool': 'a' } }), T0 + 2)), ['192.0.2.1']);
  });
});

describe('quarantine', () => {
  const pools = poolsFrom(`
  - name: p
    addresses: [192.0.2.0/30]
`);

  it('keeps a released address from everyone else until the quarantine is over', () => {
    const ipam = new Ipam(pools, { quarantineSeconds: 60 });
    ok(ipam.ensure(svc('a'), T0));
    const rel = ipam.release('a', T0 + 1000, 'Deleted');
    assert.equal(rel[0]?.kind === 'release' && rel[0].quarantine?.until, T0 + 61000);
    assert.deepEqual(ok(ipam.ensure(svc('b'), T0 + 2000)), ['192.0.2.1']);
    const r = refused(ipam.ensure(svc('c', { loadBalancerIP: '192.0.2.0' }), T0 + 60999), 'RequestedAddressInUse');
    assert.match(r.message, /quarantine/);
    assert.deepEqual(ok(ipam.ensure(svc('d'), T0 + 61000)), ['192.0.2.0']);
  });

  it('lets the same Service (recreated under the same name) ask for its address back at once', () => {
    const ipam = new Ipam(pools, { quarantineSeconds: 60 });
    ok(ipam.ensure(svc('old-uid', { name: 'ingress', loadBalancerIP: '192.0.2.2' }), T0));
    ipam.release('old-uid', T0, 'Deleted');
    const d = ipam.ensure(svc('new-uid', { name: 'ingress', loadBalancerIP: '192.0.2.2' }), T0 + 10);
    assert.deepEqual(ok(d), ['192.0.2.2']);
    assert.deepEqual(d.changes.map((c) => c.kind), ['unquarantine', 'allocate']);
  });

  it('honours a configured duration, including zero', () => {
    const ipam = new Ipam(pools, { quarantineSeconds: 0 });
    ok(ipam.ensure(svc('a'), T0));
    ipam.release('a', T0, 'Deleted');
    assert.deepEqual(ok(ipam.ensure(svc('b'), T0)), ['192.0.2.0']);
  });
});

describe('determinism', () => {
  it('gives the same answers to the same sequence, and after rebuilding from its own allocations', () => {
    const pools = poolsFrom(`
  - name: p
    avoidBuggyIPs: true
    addresses: [192.0.2.0/24, '2001:db8::/120']
`);
    const run = () => {
      const ipam = new Ipam(pools, { quarantineSeconds: 30 });
      const out: string[] = [];
      for (let i = 0; i < 50; i++) {
        out.push(...addrs(ipam.ensure(svc(`s${i}`, { policy: i % 3 ? 'SingleStack' : 'PreferDualStack' }), T0 + i)));
        if (i % 7 === 0) ipam.release(`s${i >> 1}`, T0 + i, 'Deleted');
      }
      return { out, ipam };
    };
    const a = run();
    assert.deepEqual(a.out, run().out);
    const rebuilt = new Ipam(pools, { quarantineSeconds: 30 }, { allocations: [...a.ipam.allocations()], quarantine: a.ipam.quarantined() });
    for (const now of [T0 + 100, T0 + 100000]) {
      const x = addrs(a.ipam.ensure(svc(`n${now}`), now));
      const y = addrs(rebuilt.ensure(svc(`n${now}`), now));
      assert.deepEqual(x, y);
    }
  });
});
