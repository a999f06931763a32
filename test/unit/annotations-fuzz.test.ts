// Bad input from Kubernetes objects: random values in every ipvs-lb.io/ annotation and in the Service fields
// IPAM and the model read. Parsing never throws; a refusal names the annotation or field and quotes the
// value; and a broken Service never changes what its neighbours get.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Node, V1Service } from '@kubernetes/client-node';
import fc from 'fast-check';
import { parseConfig } from '../../src/config/schema.js';
import { IpamAnnotations, parseService, type ServiceLike } from '../../src/ipam/service.js';
import { Annotations, forwardingAnnotation, schedulerAnnotation } from '../../src/model/annotations.js';
import { desiredState } from '../../src/model/desired.js';
import { fuzzParams } from '../support/fuzz.js';

const parsed = parseConfig({ interface: 'eth0', vrrp: { enabled: false }, pools: [{ name: 'default', addresses: ['192.0.2.0/24'] }, { name: 'v6', addresses: ['2001:db8:5::/64'] }] });
assert.ok(parsed.ok);
const config = parsed.config;

// Values an annotation might carry by mistake or malice: near misses, lists, whitespace, control and
// non-ASCII characters, huge strings.
const annotationValue = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.constantFrom('', ' ', ',', 'rr', ' rr ', 'RR', 'wlc\n', 'dr', 'nat', 'tun', 'Dr', 'mh,rr', '192.0.2.5', '192.0.2.5,', ',192.0.2.5', '192.0.2.5,2001:db8::5', '192.0.2.5,192.0.2.6',
    '2001:db8::5', '2001:DB8::5', '::ffff:192.0.2.5', '192.0.2.256', '0x7f.1', '1e3', 'default', 'no such pool', 'key;rm -rf /', '$(id)', 'a'.repeat(300), '\u0000', 'ü', '-', 'k.'),
  fc.array(fc.constantFrom('192.0.2.7', '2001:db8::7', 'x', ' ', ''), { maxLength: 4 }).map((a) => a.join(',')),
);
const annotationKeys = [...new Set([...Object.values(IpamAnnotations), ...Object.values(Annotations)])];
const annotations = fc.dictionary(fc.constantFrom(...annotationKeys, 'ipvs-lb.io/unknown', 'other.io/x'), annotationValue, { maxKeys: 5 });

const junkSpec = fc.record({
  loadBalancerIP: fc.option(annotationValue, { nil: undefined }),
  ipFamilies: fc.option(fc.array(fc.constantFrom('IPv4', 'IPv6', 'ipv4', '', 'IPv5'), { maxLength: 3 }), { nil: undefined }),
  ipFamilyPolicy: fc.option(fc.constantFrom('SingleStack', 'PreferDualStack', 'RequireDualStack', 'DualStack', ''), { nil: undefined }),
  externalTrafficPolicy: fc.option(fc.constantFrom('Cluster', 'Local', 'local', ''), { nil: undefined }),
  ports: fc.option(fc.array(fc.record({
    protocol: fc.option(fc.constantFrom('TCP', 'UDP', 'SCTP', 'tcp', 'ICMP', ''), { nil: undefined }),
    port: fc.oneof(fc.integer({ min: -5, max: 70000 }), fc.constant(Number.NaN), fc.double()),
    nodePort: fc.option(fc.integer({ min: -1, max: 70000 }), { nil: undefined }),
  }), { maxLength: 4 }), { nil: undefined }),
});

function service(name: string, ann: Record<string, string>, spec: Record<string, unknown> = {}): V1Service {
  return {
    metadata: { name, namespace: 'default', uid: `uid-${name}`, annotations: ann, creationTimestamp: new Date('2026-11-01T00:00:00Z') },
    spec: { type: 'LoadBalancer', ports: [{ port: 80, protocol: 'TCP', nodePort: 31000 }], ...spec },
  } as V1Service;
}

const node = (name: string, ip: string): V1Node => ({
  metadata: { name, labels: {} },
  status: { addresses: [{ type: 'InternalIP', address: ip }], conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: new Date('2026-01-01T00:00:00Z') }] },
});
const nodes = [node('node-a', '198.51.100.21'), node('node-b', '198.51.100.22')];

describe('annotation and Service parsing under bad input', () => {
  it('scheduler and forwarding annotations: a value, or a problem quoting the annotation and the value', () => {
    fc.assert(fc.property(annotations, (a) => {
      for (const [key, parse] of [[Annotations.scheduler, schedulerAnnotation], [Annotations.forwarding, forwardingAnnotation]] as const) {
        const r = parse(a);
        if (a[key] === undefined) assert.deepEqual(r, { value: undefined });
        else if (r.problem) {
          assert.equal(r.value, undefined);
          assert.ok(r.problem.startsWith(`annotation ${key} must be one of `), r.problem);
          assert.ok(r.problem.endsWith(`(got ${JSON.stringify(a[key])})`), r.problem);
        } else assert.equal(r.value, a[key]!.trim());
      }
    }), fuzzParams(3000));
  });

  it('IPAM parseService: ok, or an InvalidAnnotation refusal naming the annotation or field and its value', () => {
    fc.assert(fc.property(annotations, junkSpec, (a, spec) => {
      const svc: ServiceLike = { metadata: { uid: 'u1', namespace: 'default', name: 'web', annotations: a }, spec: spec as ServiceLike['spec'] };
      const r = parseService(svc);
      if (r.ok) {
        for (const ip of r.service.requestedIPs) assert.ok(r.service.ipFamilies.includes(ip.family));
        assert.ok(r.service.ports.every((p) => /^(TCP|UDP|SCTP)\/\d+$/.test(p)));
        return;
      }
      const f = r.refusal;
      assert.equal(f.reason, 'InvalidAnnotation');
      assert.ok(f.annotation && (f.annotation.startsWith('ipvs-lb.io/') || f.annotation.startsWith('spec.')), `names ${f.annotation}`);
      assert.ok(f.message.startsWith(`${f.annotation} `), f.message);
      assert.ok(f.message.includes(`(got ${JSON.stringify(f.value)})`), f.message);
      if (f.annotation.startsWith('ipvs-lb.io/')) assert.ok(a[f.annotation] !== undefined, `refused ${f.annotation}, which the Service does not carry`);
    }), fuzzParams(3000));
  });

  it('a Service with broken annotations and fields never changes what the other Services get', () => {
    const clean = [service('alpha', {}), service('beta', { [Annotations.scheduler]: 'wlc' })];
    const allocations = new Map([
      ['uid-alpha', [{ address: '192.0.2.1', pool: 'default' }]],
      ['uid-beta', [{ address: '192.0.2.2', pool: 'default' }]],
      ['uid-junk', [{ address: '192.0.2.3', pool: 'default' }]],
    ]);
    const base = desiredState({ services: clean, nodes, endpointSlices: [], allocations, config, now: Date.now() });
    assert.deepEqual(base.problems, []);
    fc.assert(fc.property(annotations, junkSpec, (a, spec) => {
      const junk = service('junk', a, Object.fromEntries(Object.entries(spec).filter(([, v]) => v !== undefined)));
      const d = desiredState({ services: [clean[0]!, junk, clean[1]!], nodes, endpointSlices: [], allocations, config, now: Date.now() });
      assert.deepEqual(d.virtualServices.filter((v) => v.service !== 'default/junk'), base.virtualServices);
      for (const p of d.problems) {
        assert.equal(p.service, 'default/junk');
        if (p.reason === 'InvalidAnnotation' && p.message.startsWith('annotation ')) assert.ok(p.message.includes('(got '), p.message);
      }
    }), fuzzParams(1500));
  });
});
