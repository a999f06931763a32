// Shared fixtures for the IPAM and ledger tests: pools from real YAML through the real config validator, and
// Services through the real annotation parser, so the tests exercise what the daemon will run.
import { parseConfigText } from '../../src/config/load.js';
import type { PoolConfig } from '../../src/config/types.js';
import { parseService, type ServiceLike } from '../../src/ipam/service.js';
import type { ServiceRequest } from '../../src/ipam/types.js';

export function poolsFrom(poolsYaml: string): PoolConfig[] {
  const text = `interface: eth0\nvrrp: {enabled: false}\npools:\n${poolsYaml.replace(/^\n/, '')}`;
  const r = parseConfigText(text, 'test.yaml');
  if (!r.ok) throw new Error(r.problems.join('\n'));
  return r.config.pools;
}

export interface SvcOpts {
  ns?: string;
  name?: string;
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
  namespaceLabels?: Record<string, string>;
  loadBalancerIP?: string;
  ipFamilies?: ('IPv4' | 'IPv6')[];
  policy?: 'SingleStack' | 'PreferDualStack' | 'RequireDualStack';
  ports?: (number | [string, number])[];
  externalTrafficPolicy?: 'Cluster' | 'Local';
  selector?: Record<string, string>;
}

export function serviceLike(uid: string, o: SvcOpts = {}): ServiceLike {
  return {
    metadata: { uid, namespace: o.ns ?? 'default', name: o.name ?? uid, labels: o.labels, annotations: o.annotations },
    spec: {
      loadBalancerIP: o.loadBalancerIP,
      ipFamilies: o.ipFamilies,
      ipFamilyPolicy: o.policy,
      ports: (o.ports ?? [80]).map((p) => (typeof p === 'number' ? { protocol: 'TCP', port: p } : { protocol: p[0], port: p[1] })),
      externalTrafficPolicy: o.externalTrafficPolicy,
      selector: o.selector,
    },
  };
}

export function svc(uid: string, o: SvcOpts = {}): ServiceRequest {
  const r = parseService(serviceLike(uid, o), o.namespaceLabels ?? {});
  if (!r.ok) throw new Error(r.refusal.message);
  return r.service;
}
