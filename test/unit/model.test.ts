import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1EndpointSlice, V1Node, V1Service } from '@kubernetes/client-node';
import { parseConfig } from '../../src/config/schema.js';
import { desiredState, type ModelInputs } from '../../src/model/desired.js';

const parsed = parseConfig({
  interface: 'eth0',
  vrrp: { enabled: false },
  pools: [
    { name: 'default', addresses: ['192.0.2.0/24'] },
    { name: 'v6', addresses: ['2001:db8:5::/64'] },
    { name: 'natpool', addresses: ['203.0.113.0/28'], forwarding: 'nat', scheduler: 'wrr' },
  ],
  backends: { notReadyGraceSeconds: 60 },
});
assert.ok(parsed.ok);
const config = parsed.config;
const NOW = Date.parse('2026-11-22T10:00:00Z');

function node(name: string, ip: string, opts: { ready?: boolean; since?: string; labels?: Record<string, string>; ip6?: string } = {}): V1Node {
  return {
    metadata: { name, labels: opts.labels ?? {} },
    status: {
      addresses: [{ type: 'InternalIP', address: ip }, ...(opts.ip6 ? [{ type: 'InternalIP', address: opts.ip6 }] : []), { type: 'Hostname', address: name }],
      conditions: [{ type: 'Ready', status: opts.ready === false ? 'False' : 'True', lastTransitionTime: new Date(opts.since ?? '2026-01-01T00:00:00Z') }],
    },
  };
}

function service(name: string, ports: Array<{ port: number; protocol?: string; nodePort?: number }>, extra: Partial<V1Service['spec']> & { annotations?: Record<string, string>; created?: string } = {}): V1Service {
  const { annotations, created, ...spec } = extra;
  return {
    metadata: { name, namespace: 'default', uid: `uid-${name}`, annotations, creationTimestamp: new Date(created ?? '2026-11-01T00:00:00Z') },
    spec: { type: 'LoadBalancer', ports: ports.map((p) => ({ ...p })), ...spec },
  };
}

function slice(svc: string, endpoints: Array<{ node: string; ready?: boolean }>): V1EndpointSlice {
  return {
    addressType: 'IPv4',
    metadata: { name: `${svc}-abc`, namespace: 'default', labels: { 'kubernetes.io/service-name': svc } },
    endpoints: endpoints.map((e, i) => ({ addresses: [`203.0.113.${100 + i}`], nodeName: e.node, conditions: { ready: e.ready ?? true } })),
  };
}

const nodes = [node('node-a', '198.51.100.21'), node('node-b', '198.51.100.22'), node('node-c', '198.51.100.23')];

function inputs(over: Partial<ModelInputs>): ModelInputs {
  return { services: [], nodes, endpointSlices: [], allocations: new Map(), config, now: NOW, ...over };
}

describe('desired state model', () => {
  it('maps a DR Service to one virtual service per port with every ready node as real server on the Service port', () => {
    const svc = service('whoami', [{ port: 80, nodePort: 31000 }, { port: 53, protocol: 'UDP', nodePort: 31001 }]);
    const { virtualServices, problems } = desiredState(inputs({
      services: [svc], allocations: new Map([['uid-whoami', [{ address: '192.0.2.1', pool: 'default' }]]]),
    }));
    assert.deepEqual(problems, []);
    assert.deepEqual(virtualServices.map((v) => v.key), ['TCP/192.0.2.1:80', 'UDP/192.0.2.1:53']);
    const web = virtualServices[0]!;
    assert.equal(web.forwarding, 'dr');
    assert.equal(web.scheduler, 'mh');
    assert.deepEqual(web.schedulerFlags, ['mh-fallback', 'mh-port']);
    assert.deepEqual(web.realServers.map((r) => `${r.address}:${r.port}/${r.weight}`), ['198.51.100.21:80/1', '198.51.100.22:80/1', '198.51.100.23:80/1']);
    assert.equal(web.service, 'default/whoami');
  });

  it('leaves out nodes labelled exclude-from-external-load-balancers and nodes outside the node selector', () => {
    const sel = parseConfig({ interface: 'eth0', vrrp: { enabled: false }, pools: [{ name: 'default', addresses: ['192.0.2.0/24'] }], backends: { nodeSelector: { matchLabels: { lb: 'yes' } } } });
    assert.ok(sel.ok);
    const ns = [
      node('n1', '198.51.100.31', { labels: { lb: 'yes' } }),
      node('n2', '198.51.100.32', { labels: { lb: 'yes', 'node.kubernetes.io/exclude-from-external-load-balancers': '' } }),
      node('n3', '198.51.100.33', { labels: { lb: 'no' } }),
    ];
    const { virtualServices } = desiredState(inputs({
      nodes: ns, config: sel.config, services: [service('s', [{ port: 80 }])],
      allocations: new Map([['uid-s', [{ address: '192.0.2.9', pool: 'default' }]]]),
    }));
    assert.deepEqual(virtualServices[0]!.realServers.map((r) => r.node), ['n1']);
  });

  it('with externalTrafficPolicy Local uses only nodes with ready local endpoints, weighted by count when asked', () => {
    const svc = service('local', [{ port: 8080 }], { externalTrafficPolicy: 'Local' });
    const slices = [slice('local', [{ node: 'node-a' }, { node: 'node-a' }, { node: 'node-b', ready: false }, { node: 'node-c' }]), slice('other', [{ node: 'node-b' }])];
    const base = inputs({ services: [svc], endpointSlices: slices, allocations: new Map([['uid-local', [{ address: '192.0.2.2', pool: 'default' }]]]) });
    assert.deepEqual(desiredState(base).virtualServices[0]!.realServers.map((r) => `${r.node}/${r.weight}`), ['node-a/1', 'node-c/1']);
    const weighted = { ...base, config: { ...config, backends: { ...config.backends, weightByEndpoints: true } } };
    assert.deepEqual(desiredState(weighted).virtualServices[0]!.realServers.map((r) => `${r.node}/${r.weight}`), ['node-a/2', 'node-c/1']);
  });

  it('drains a NotReady node at weight 0 during the grace period and removes it after', () => {
    const svc = service('s', [{ port: 80 }]);
    const allocations = new Map([['uid-s', [{ address: '192.0.2.3', pool: 'default' }]]]);
    const flapping = [nodes[0]!, node('node-b', '198.51.100.22', { ready: false, since: '2026-11-22T09:59:30Z' })];
    const during = desiredState(inputs({ nodes: flapping, services: [svc], allocations })).virtualServices[0]!;
    assert.deepEqual(during.realServers.map((r) => `${r.node}/${r.weight}/${r.state}`), ['node-a/1/serving', 'node-b/0/draining-not-ready']);
    const after = desiredState(inputs({ nodes: flapping, services: [svc], allocations, now: NOW + 31_000 })).virtualServices[0]!;
    assert.deepEqual(after.realServers.map((r) => r.node), ['node-a']);
  });

  it('drains a node whose probe says down, for that virtual service only', () => {
    const allocations = new Map([['uid-s', [{ address: '192.0.2.4', pool: 'default' }]], ['uid-t', [{ address: '192.0.2.5', pool: 'default' }]]]);
    const { virtualServices } = desiredState(inputs({
      services: [service('s', [{ port: 80 }]), service('t', [{ port: 80 }])], allocations,
      health: (n, key) => (n === 'node-b' && key === 'TCP/192.0.2.4:80' ? 'down' : 'up'),
    }));
    assert.deepEqual(virtualServices[0]!.realServers.map((r) => r.weight), [1, 0, 1]);
    assert.deepEqual(virtualServices[1]!.realServers.map((r) => r.weight), [1, 1, 1]);
  });

  it('NAT forwards to the nodePort and takes the pool defaults; a NAT port without nodePort is reported', () => {
    const svc = service('n', [{ port: 80, nodePort: 30080 }, { port: 81 }]);
    const { virtualServices, problems } = desiredState(inputs({ services: [svc], allocations: new Map([['uid-n', [{ address: '203.0.113.1', pool: 'natpool' }]]]) }));
    assert.equal(virtualServices.length, 1);
    assert.equal(virtualServices[0]!.forwarding, 'nat');
    assert.equal(virtualServices[0]!.scheduler, 'wrr');
    assert.deepEqual(virtualServices[0]!.realServers.map((r) => r.port), [30080, 30080, 30080]);
    assert.equal(problems.length, 1);
    assert.match(problems[0]!.message, /nodePort for port 81\/TCP/);
  });

  it('a bad annotation is reported for its own Service, which falls back to defaults; others are unaffected', () => {
    const bad = service('bad', [{ port: 80 }], { annotations: { 'ipvs-lb.io/scheduler': 'fastest', 'ipvs-lb.io/forwarding': 'tun' } });
    const good = service('good', [{ port: 80 }], { annotations: { 'ipvs-lb.io/scheduler': 'wlc' } });
    const { virtualServices, problems } = desiredState(inputs({
      services: [bad, good],
      allocations: new Map([['uid-bad', [{ address: '192.0.2.6', pool: 'default' }]], ['uid-good', [{ address: '192.0.2.7', pool: 'default' }]]]),
    }));
    assert.deepEqual(problems, [{ service: 'default/bad', reason: 'InvalidAnnotation', message: 'annotation ipvs-lb.io/scheduler must be one of rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos (got "fastest")' }]);
    assert.deepEqual(virtualServices.map((v) => `${v.service} ${v.scheduler} ${v.forwarding}`), ['default/bad mh tun', 'default/good wlc dr']);
  });

  it('two Services sharing a VIP on different ports get one virtual service each; a clash keeps the older owner', () => {
    const allocations = new Map([
      ['uid-web', [{ address: '192.0.2.8', pool: 'default' }]],
      ['uid-dns', [{ address: '192.0.2.8', pool: 'default' }]],
      ['uid-late', [{ address: '192.0.2.8', pool: 'default' }]],
    ]);
    const { virtualServices, problems } = desiredState(inputs({
      services: [
        service('late', [{ port: 80 }], { created: '2026-11-20T00:00:00Z' }),
        service('web', [{ port: 80 }], { created: '2026-11-01T00:00:00Z', externalTrafficPolicy: 'Local' }),
        service('dns', [{ port: 53, protocol: 'UDP' }]),
      ],
      allocations,
    }));
    assert.deepEqual(virtualServices.map((v) => `${v.key} ${v.service}`), ['TCP/192.0.2.8:80 default/web', 'UDP/192.0.2.8:53 default/dns']);
    assert.deepEqual(problems.map((p) => `${p.service} ${p.reason}`), ['default/late PortConflict']);
  });

  it('an IPv6 VIP gets IPv6 node addresses; sessionAffinity ClientIP becomes persistence', () => {
    const ns = [node('a', '198.51.100.21', { ip6: '2001:db8:1::21' }), node('b', '198.51.100.22')];
    const svc = service('v6', [{ port: 443 }], { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } } });
    const { virtualServices } = desiredState(inputs({ nodes: ns, services: [svc], allocations: new Map([['uid-v6', [{ address: '2001:DB8:5::1', pool: 'v6' }]]]) }));
    assert.equal(virtualServices[0]!.key, 'TCP/[2001:db8:5::1]:443');
    assert.equal(virtualServices[0]!.persistenceTimeoutSeconds, 600);
    assert.deepEqual(virtualServices[0]!.realServers.map((r) => r.address), ['2001:db8:1::21']);
  });

  it('gives the same answer whatever order the inputs come in', () => {
    const svcs = [service('a', [{ port: 80 }]), service('b', [{ port: 81 }]), service('c', [{ port: 82 }])];
    const allocations = new Map(svcs.map((s, i) => [s.metadata!.uid!, [{ address: `192.0.2.${20 + i}`, pool: 'default' }]]));
    const one = desiredState(inputs({ services: svcs, allocations }));
    const two = desiredState(inputs({ services: [...svcs].reverse(), nodes: [...nodes].reverse(), allocations }));
    assert.deepEqual(two, one);
  });
});
