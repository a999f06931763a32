// Turns the parts of a Kubernetes Service that IPAM cares about into a ServiceRequest. The input is a
// structural subset of V1Service, so the watcher passes client-node objects as they are and tests pass plain
// objects. Any bad value is refused as InvalidAnnotation naming the annotation (or field) and the value.
import { type Family, formatIp, parseIp } from './address.js';
import type { IpFamilyPolicy, Refusal, RequestedIp, ServiceRequest } from './types.js';

export const IpamAnnotations = {
  loadBalancerIPs: 'ipvs-lb.io/load-balancer-ips',
  addressPool: 'ipvs-lb.io/address-pool',
  allowSharedIP: 'ipvs-lb.io/allow-shared-ip',
} as const;

export interface ServiceLike {
  metadata?: {
    uid?: string;
    namespace?: string;
    name?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec?: {
    loadBalancerIP?: string;
    ipFamilies?: string[];
    ipFamilyPolicy?: string;
    ports?: { protocol?: string; port: number }[];
    externalTrafficPolicy?: string;
    selector?: Record<string, string>;
  };
}

export type ParsedService = { ok: true; service: ServiceRequest } | { ok: false; refusal: Refusal };

const familyName = (f: Family) => (f === 4 ? 'IPv4' : 'IPv6');

function invalid(annotation: string, value: unknown, what: string): ParsedService {
  const shown = typeof value === 'string' ? value : JSON.stringify(value);
  return {
    ok: false,
    refusal: { reason: 'InvalidAnnotation', annotation, value: shown, message: `${annotation} ${what} (got ${JSON.stringify(shown)})` },
  };
}

/** Kubernetes object names and label-ish keys: a bounded, printable token (it ends up in Events and the ledger). */
const TOKEN = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$/;

export function parseService(svc: ServiceLike, namespaceLabels: Record<string, string> = {}): ParsedService {
  const meta = svc.metadata ?? {};
  const spec = svc.spec ?? {};
  const ann = meta.annotations ?? {};
  if (!meta.uid) return invalid('metadata.uid', meta.uid ?? '', 'is required');
  if (!meta.namespace) return invalid('metadata.namespace', meta.namespace ?? '', 'is required');
  if (!meta.name) return invalid('metadata.name', meta.name ?? '', 'is required');

  // Requested addresses: the annotation list, and the deprecated spec field which must agree with it.
  const requested = new Map<Family, RequestedIp>();
  const rawList = ann[IpamAnnotations.loadBalancerIPs];
  if (rawList !== undefined) {
    const items = rawList.split(',').map((s) => s.trim());
    if (items.some((s) => s === '')) return invalid(IpamAnnotations.loadBalancerIPs, rawList, 'must be a comma-separated list of IP addresses without empty items');
    for (const item of items) {
      const ip = parseIp(item);
      if (!ip) return invalid(IpamAnnotations.loadBalancerIPs, rawList, `has "${item}", which is not an IP address`);
      if (requested.has(ip.family)) return invalid(IpamAnnotations.loadBalancerIPs, rawList, `must hold at most one ${familyName(ip.family)} address`);
      requested.set(ip.family, { family: ip.family, value: ip.value, address: formatIp(ip) });
    }
  }
  const lbIP = spec.loadBalancerIP?.trim();
  if (lbIP) {
    const ip = parseIp(lbIP);
    if (!ip) return invalid('spec.loadBalancerIP', lbIP, 'is not an IP address');
    const same = requested.get(ip.family);
    if (rawList !== undefined && (!same || same.value !== ip.value)) {
      return invalid(IpamAnnotations.loadBalancerIPs, rawList, `contradicts spec.loadBalancerIP ${lbIP}`);
    }
    requested.set(ip.family, { family: ip.family, value: ip.value, address: formatIp(ip) });
  }

  let requestedPool: string | undefined;
  const rawPool = ann[IpamAnnotations.addressPool];
  if (rawPool !== undefined) {
    requestedPool = rawPool.trim();
    if (!TOKEN.test(requestedPool)) return invalid(IpamAnnotations.addressPool, rawPool, 'must be the name of a pool');
  }
  let sharingKey: string | undefined;
  const rawKey = ann[IpamAnnotations.allowSharedIP];
  if (rawKey !== undefined) {
    sharingKey = rawKey.trim();
    if (!TOKEN.test(sharingKey)) return invalid(IpamAnnotations.allowSharedIP, rawKey, 'must be a non-empty key of letters, digits, ".", "_" or "-"');
  }

  const policyRaw = spec.ipFamilyPolicy ?? 'SingleStack';
  if (policyRaw !== 'SingleStack' && policyRaw !== 'PreferDualStack' && policyRaw !== 'RequireDualStack') {
    return invalid('spec.ipFamilyPolicy', policyRaw, 'must be SingleStack, PreferDualStack or RequireDualStack');
  }
  const policy: IpFamilyPolicy = policyRaw;
  const families: Family[] = [];
  for (const f of spec.ipFamilies ?? []) {
    const fam: Family | undefined = f === 'IPv4' ? 4 : f === 'IPv6' ? 6 : undefined;
    if (!fam || families.includes(fam)) return invalid('spec.ipFamilies', JSON.stringify(spec.ipFamilies), 'must list IPv4 and/or IPv6, each once');
    families.push(fam);
  }
  // The API server always fills ipFamilies; without it, the requested addresses (or IPv4) decide.
  if (families.length === 0) families.push(...(requested.size > 0 ? [...requested.keys()].sort() : [4 as Family]));
  if (policy === 'SingleStack') families.length = 1;
  else for (const f of [4, 6] as Family[]) if (!families.includes(f)) families.push(f);
  for (const r of requested.values()) {
    if (!families.includes(r.family)) {
      const annotation = rawList !== undefined ? IpamAnnotations.loadBalancerIPs : 'spec.loadBalancerIP';
      return invalid(annotation, rawList ?? lbIP ?? '', `asks for an ${familyName(r.family)} address but the Service is ${policy} ${families.map(familyName).join(',')}`);
    }
  }

  const ports = new Set<string>();
  for (const p of spec.ports ?? []) {
    const proto = p.protocol ?? 'TCP';
    if (proto !== 'TCP' && proto !== 'UDP' && proto !== 'SCTP') return invalid('spec.ports.protocol', proto, 'must be TCP, UDP or SCTP');
    if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) return invalid('spec.ports.port', String(p.port), 'must be 1-65535');
    ports.add(`${proto}/${p.port}`);
  }
  const etp = spec.externalTrafficPolicy ?? 'Cluster';
  if (etp !== 'Cluster' && etp !== 'Local') return invalid('spec.externalTrafficPolicy', etp, 'must be Cluster or Local');

  return {
    ok: true,
    service: {
      uid: meta.uid,
      namespace: meta.namespace,
      name: meta.name,
      labels: meta.labels ?? {},
      namespaceLabels,
      requestedIPs: [...requested.values()].sort((a, b) => a.family - b.family),
      requestedPool,
      sharingKey,
      ipFamilies: families,
      ipFamilyPolicy: policy,
      ports: [...ports].sort(),
      externalTrafficPolicy: etp,
      selector: spec.selector,
    },
  };
}

/**
 * The request as far as it parses: each ipvs-lb.io/ annotation that does not parse is left out (undefined
 * when a field of the spec itself does not parse). For a Service whose annotations went bad after it got its
 * address: the allocator refuses the new request and the Service keeps what it holds, so a follower must
 * hold that address too, and records it under this request.
 */
export function parseServiceLeniently(svc: ServiceLike, namespaceLabels: Record<string, string> = {}): ServiceRequest | undefined {
  let current = svc;
  for (let i = 0; i < Object.keys(IpamAnnotations).length + 1; i++) {
    const r = parseService(current, namespaceLabels);
    if (r.ok) return r.service;
    const bad = r.refusal.annotation;
    const annotations = current.metadata?.annotations ?? {};
    if (bad === undefined || !bad.startsWith('ipvs-lb.io/') || annotations[bad] === undefined) return undefined;
    const rest = { ...annotations };
    delete rest[bad];
    current = { ...current, metadata: { ...current.metadata, annotations: rest } };
  }
  return undefined;
}
