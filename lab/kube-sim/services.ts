// Server-side behaviour of core/v1 Services: defaults, validation and the clusterIP / nodePort /
// healthCheckNodePort allocators, following pkg/registry/core/service and pkg/apis/core/validation.
// Allocation state is derived from the stored Services (rebuild) and kept in step on every commit.
import { formatIp, parseIp, type Family } from '../../src/ipam/address.js';
import { parseRange, type AddressRange } from '../../src/ipam/range.js';
import { clone, isObject, type Json, type JsonObject } from './json.js';
import {
  fieldDuplicate,
  fieldForbidden,
  fieldImmutable,
  fieldInvalid,
  fieldRequired,
  fieldUnsupported,
  internalError,
  type Cause,
} from './status.js';

const TYPES = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'] as const;
const PROTOCOLS = ['TCP', 'UDP', 'SCTP'] as const;
const POLICIES = ['Cluster', 'Local'] as const;
const FAMILY_POLICIES = ['SingleStack', 'PreferDualStack', 'RequireDualStack'] as const;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const IANA_SVC_NAME = /^(?=.*[a-z])[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const familyName = (f: Family) => (f === 4 ? 'IPv4' : 'IPv6');

export interface ServiceNetworkOptions {
  /** One CIDR per family, primary first (like --service-cluster-ip-range). */
  serviceCIDRs: string[];
  nodePortRange: [number, number];
  /** Seed of the port picker, so a run is reproducible. */
  seed: number;
}

const needsNodePorts = (spec: JsonObject) =>
  spec.type === 'NodePort' || (spec.type === 'LoadBalancer' && spec.allocateLoadBalancerNodePorts !== false);
const needsHealthCheck = (spec: JsonObject) => spec.type === 'LoadBalancer' && spec.externalTrafficPolicy === 'Local';
const isExternal = (spec: JsonObject) => spec.type === 'NodePort' || spec.type === 'LoadBalancer';

function ports(spec: JsonObject): JsonObject[] {
  return Array.isArray(spec.ports) ? spec.ports.filter(isObject) : [];
}

export class ServiceNetwork {
  private readonly ranges: AddressRange[];
  private readonly usedIPs = new Map<string, string>();
  private readonly usedPorts = new Map<number, string>();
  private readonly owned = new Map<string, { ips: string[]; ports: number[] }>();
  private readonly cursors = new Map<Family, bigint>();
  private random: () => number;

  constructor(private readonly opts: ServiceNetworkOptions) {
    this.ranges = opts.serviceCIDRs.map((c) => {
      const r = parseRange(c);
      if (!r.ok || !c.includes('/')) throw new Error(`service CIDR ${c}: ${r.ok ? 'must be a CIDR' : r.error}`);
      return r.range;
    });
    if (this.ranges.length === 0 || this.ranges.length > 2 || (this.ranges.length === 2 && this.ranges[0]!.family === this.ranges[1]!.family)) {
      throw new Error('serviceCIDRs: give one CIDR, or two of different families');
    }
    this.random = mulberry32(opts.seed);
  }

  get families(): Family[] {
    return this.ranges.map((r) => r.family);
  }

  /** The first usable address of the primary range, which the `default/kubernetes` Service takes. */
  firstIP(): string {
    const r = this.ranges[0]!;
    return formatIp({ family: r.family, value: r.first + 1n });
  }

  reset(services: Iterable<JsonObject>): void {
    this.usedIPs.clear();
    this.usedPorts.clear();
    this.owned.clear();
    this.cursors.clear();
    this.random = mulberry32(this.opts.seed);
    for (const s of services) this.commit(undefined, s);
  }

  /** Keeps the allocation maps in step with a stored change (create: old undefined, delete: next undefined). */
  commit(old: JsonObject | undefined, next: JsonObject | undefined): void {
    if (old) {
      const had = this.owned.get(ownerOf(old));
      for (const ip of had?.ips ?? []) this.usedIPs.delete(ip);
      for (const p of had?.ports ?? []) this.usedPorts.delete(p);
      this.owned.delete(ownerOf(old));
    }
    if (!next) return;
    const spec = (next.spec ?? {}) as JsonObject;
    const owner = ownerOf(next);
    const ips = clusterIPsOf(spec);
    const nodePorts = ports(spec).map((p) => p.nodePort).filter((p): p is number => typeof p === 'number');
    if (typeof spec.healthCheckNodePort === 'number') nodePorts.push(spec.healthCheckNodePort);
    for (const ip of ips) this.usedIPs.set(ip, owner);
    for (const p of nodePorts) this.usedPorts.set(p, owner);
    this.owned.set(owner, { ips, ports: nodePorts });
  }

  /**
   * Fills defaults and allocations into `svc` (mutated) and returns validation causes; `old` is the stored
   * object on update. Nothing is recorded until commit(), so a refused request allocates nothing.
   */
  prepare(svc: JsonObject, old: JsonObject | undefined): Cause[] {
    if (!isObject(svc.spec)) svc.spec = {};
    const spec = svc.spec as JsonObject;
    const oldSpec = old && isObject(old.spec) ? old.spec : undefined;
    const causes: Cause[] = [];
    spec.type ??= 'ClusterIP';
    if (!TYPES.includes(spec.type as (typeof TYPES)[number])) {
      return [fieldUnsupported('spec.type', spec.type, TYPES)];
    }
    if (oldSpec) this.carryAllocated(spec, oldSpec);
    this.defaults(spec);
    causes.push(...this.validateSpec(spec, oldSpec));
    if (causes.length > 0) return causes;
    // Allocation comes last so that an invalid Service takes nothing.
    const owner = ownerOf(svc);
    if (spec.type !== 'ExternalName' && spec.clusterIP !== 'None') {
      const families = (spec.ipFamilies as string[]).map((f) => (f === 'IPv4' ? 4 : 6) as Family);
      const ips = Array.isArray(spec.clusterIPs) ? [...(spec.clusterIPs as string[])] : [];
      for (const [i, f] of families.entries()) {
        if (ips[i]) continue;
        const ip = this.allocateIP(f, owner);
        if (!ip) throw internalError(`failed to allocate a serviceIP: range is full`);
        ips[i] = ip;
      }
      spec.clusterIPs = ips;
      spec.clusterIP = ips[0]!;
    }
    const taken = new Set<number>();
    if (needsNodePorts(spec)) {
      for (const p of ports(spec)) {
        if (typeof p.nodePort === 'number') continue;
        const port = this.allocatePort(owner, taken);
        if (port === undefined) throw internalError('failed to allocate a nodePort: range is full');
        p.nodePort = port;
        taken.add(port);
      }
    }
    if (needsHealthCheck(spec) && typeof spec.healthCheckNodePort !== 'number') {
      const port = this.allocatePort(owner, taken);
      if (port === undefined) throw internalError('failed to allocate a healthCheckNodePort: range is full');
      spec.healthCheckNodePort = port;
    }
    return [];
  }

  /** A status write changes only status; the checks here are those of ValidateServiceStatusUpdate. */
  prepareStatus(svc: JsonObject): Cause[] {
    const causes: Cause[] = [];
    const lb = isObject(svc.status) && isObject(svc.status.loadBalancer) ? svc.status.loadBalancer : undefined;
    const ingress = lb && Array.isArray(lb.ingress) ? lb.ingress : [];
    for (const [i, ing] of ingress.entries()) {
      const f = `status.loadBalancer.ingress[${i}]`;
      if (!isObject(ing)) {
        causes.push(fieldInvalid(f, ing, 'must be an object'));
        continue;
      }
      if (ing.ip !== undefined && (typeof ing.ip !== 'string' || !parseIp(ing.ip))) causes.push(fieldInvalid(`${f}.ip`, ing.ip, 'must be a valid IP address'));
      if (ing.hostname !== undefined && (typeof ing.hostname !== 'string' || parseIp(ing.hostname))) causes.push(fieldInvalid(`${f}.hostname`, ing.hostname, 'must be a DNS name, not an IP address'));
      if (typeof ing.ip === 'string' && ing.ipMode === undefined) ing.ipMode = 'VIP';
      if (ing.ipMode !== undefined) {
        if (ing.ip === undefined) causes.push(fieldForbidden(`${f}.ipMode`, 'may not be specified when `ip` is not set'));
        else if (ing.ipMode !== 'VIP' && ing.ipMode !== 'Proxy') causes.push(fieldUnsupported(`${f}.ipMode`, ing.ipMode, ['Proxy', 'VIP']));
      }
    }
    return causes;
  }

  private carryAllocated(spec: JsonObject, oldSpec: JsonObject): void {
    // Like patchAllocatedValues: an update that omits allocated values keeps them instead of re-allocating.
    if (spec.type !== 'ExternalName' && oldSpec.type !== 'ExternalName') {
      if (spec.clusterIP === undefined || spec.clusterIP === '') {
        if (oldSpec.clusterIP !== undefined) spec.clusterIP = oldSpec.clusterIP;
        if (spec.clusterIPs === undefined && oldSpec.clusterIPs !== undefined) spec.clusterIPs = clone(oldSpec.clusterIPs);
      }
      if (spec.ipFamilies === undefined && oldSpec.ipFamilies !== undefined) spec.ipFamilies = clone(oldSpec.ipFamilies);
      if (spec.ipFamilyPolicy === undefined && oldSpec.ipFamilyPolicy !== undefined) spec.ipFamilyPolicy = oldSpec.ipFamilyPolicy;
    }
    if (needsNodePorts(spec) && needsNodePorts(oldSpec)) {
      for (const p of ports(spec)) {
        if (p.nodePort !== undefined) continue;
        const same = ports(oldSpec).find((o) => o.port === p.port && (o.protocol ?? 'TCP') === (p.protocol ?? 'TCP'));
        if (same && typeof same.nodePort === 'number') p.nodePort = same.nodePort;
      }
    }
    if (!needsNodePorts(spec) && needsNodePorts(oldSpec)) {
      // dropTypeDependentFields: ports allocated for the old type are released when the user left them as they were.
      for (const p of ports(spec)) {
        const same = ports(oldSpec).find((o) => o.port === p.port && o.nodePort === p.nodePort);
        if (same) delete p.nodePort;
      }
    }
    if (needsHealthCheck(spec) && needsHealthCheck(oldSpec) && spec.healthCheckNodePort === undefined) {
      spec.healthCheckNodePort = oldSpec.healthCheckNodePort ?? null;
      if (spec.healthCheckNodePort === null) delete spec.healthCheckNodePort;
    }
    if (!needsHealthCheck(spec) && spec.healthCheckNodePort === oldSpec.healthCheckNodePort) delete spec.healthCheckNodePort;
    if (spec.type !== 'LoadBalancer' && oldSpec.type === 'LoadBalancer') {
      if (spec.allocateLoadBalancerNodePorts === oldSpec.allocateLoadBalancerNodePorts) delete spec.allocateLoadBalancerNodePorts;
      if (spec.loadBalancerClass === oldSpec.loadBalancerClass) delete spec.loadBalancerClass;
    }
    if (!isExternal(spec) && isExternal(oldSpec) && spec.externalTrafficPolicy === oldSpec.externalTrafficPolicy) delete spec.externalTrafficPolicy;
    if (spec.type === 'ExternalName' && oldSpec.type !== 'ExternalName' && spec.clusterIP === oldSpec.clusterIP) {
      delete spec.clusterIP;
      delete spec.clusterIPs;
      delete spec.ipFamilies;
      delete spec.ipFamilyPolicy;
    }
  }

  private defaults(spec: JsonObject): void {
    spec.sessionAffinity ??= 'None';
    if (spec.sessionAffinity === 'ClientIP') {
      const cfg = isObject(spec.sessionAffinityConfig) ? spec.sessionAffinityConfig : (spec.sessionAffinityConfig = {});
      const cip = isObject(cfg.clientIP) ? cfg.clientIP : (cfg.clientIP = {});
      cip.timeoutSeconds ??= 10800;
    }
    for (const p of ports(spec)) {
      p.protocol ??= 'TCP';
      if (p.targetPort === undefined && typeof p.port === 'number') p.targetPort = p.port;
    }
    if (spec.type === 'ExternalName') return;
    spec.internalTrafficPolicy ??= 'Cluster';
    if (isExternal(spec)) spec.externalTrafficPolicy ??= 'Cluster';
    if (spec.type === 'LoadBalancer') spec.allocateLoadBalancerNodePorts ??= true;
    const fams = this.families;
    if (spec.ipFamilyPolicy === undefined) spec.ipFamilyPolicy = Array.isArray(spec.ipFamilies) && spec.ipFamilies.length === 2 ? 'RequireDualStack' : 'SingleStack';
    if (!Array.isArray(spec.ipFamilies) || spec.ipFamilies.length === 0) {
      const fromIP = typeof spec.clusterIP === 'string' ? parseIp(spec.clusterIP)?.family : undefined;
      const first = fromIP ?? fams[0]!;
      spec.ipFamilies = [familyName(first)];
    }
    const list = spec.ipFamilies as Json[];
    if (spec.ipFamilyPolicy !== 'SingleStack' && list.length === 1 && fams.length === 2) {
      const other = fams.find((f) => familyName(f) !== list[0]);
      if (other) list.push(familyName(other));
    }
  }

  private validateSpec(spec: JsonObject, oldSpec: JsonObject | undefined): Cause[] {
    const causes: Cause[] = [];
    const type = spec.type as string;
    const list = ports(spec);
    const headless = spec.clusterIP === 'None';
    if (type === 'ExternalName') {
      if (typeof spec.externalName !== 'string' || spec.externalName === '') causes.push(fieldRequired('spec.externalName'));
      if (spec.clusterIP !== undefined && spec.clusterIP !== '') causes.push(fieldForbidden('spec.clusterIP', 'may not be set for ExternalName services'));
    } else if (!Array.isArray(spec.ports) || spec.ports.length === 0) {
      if (!headless) causes.push(fieldRequired('spec.ports'));
    }
    if (Array.isArray(spec.ports) && list.length !== spec.ports.length) causes.push(fieldInvalid('spec.ports', spec.ports, 'every port must be an object'));
    const seenNames = new Set<string>();
    const seenPorts = new Set<string>();
    const seenNodePorts = new Set<number>();
    for (const [i, p] of list.entries()) {
      const f = `spec.ports[${i}]`;
      if (list.length > 1 && (p.name === undefined || p.name === '')) causes.push(fieldRequired(`${f}.name`));
      if (p.name !== undefined && p.name !== '') {
        if (typeof p.name !== 'string' || !DNS_LABEL.test(p.name) || p.name.length > 63) {
          causes.push(fieldInvalid(`${f}.name`, p.name, "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"));
        } else if (seenNames.has(p.name)) causes.push(fieldDuplicate(`${f}.name`, p.name));
        else seenNames.add(p.name);
      }
      if (!Number.isInteger(p.port) || (p.port as number) < 1 || (p.port as number) > 65535) causes.push(fieldInvalid(`${f}.port`, p.port ?? 0, 'must be between 1 and 65535, inclusive'));
      if (!PROTOCOLS.includes(p.protocol as (typeof PROTOCOLS)[number])) causes.push(fieldUnsupported(`${f}.protocol`, p.protocol, PROTOCOLS));
      const key = `${String(p.port)}/${String(p.protocol)}`;
      if (seenPorts.has(key)) causes.push(fieldDuplicate(f, { port: p.port, protocol: p.protocol }));
      seenPorts.add(key);
      const tp = p.targetPort;
      if (typeof tp === 'number' ? !Number.isInteger(tp) || tp < 1 || tp > 65535 : typeof tp !== 'string' || !IANA_SVC_NAME.test(tp) || tp.length > 15) {
        causes.push(fieldInvalid(`${f}.targetPort`, tp, 'must be a port number between 1 and 65535 or an IANA service name'));
      }
      if (p.nodePort !== undefined) {
        if (!isExternal(spec)) causes.push(fieldForbidden(`${f}.nodePort`, `may not be used when \`type\` is '${type}'`));
        else if (!Number.isInteger(p.nodePort)) causes.push(fieldInvalid(`${f}.nodePort`, p.nodePort, 'must be an integer'));
        else causes.push(...this.checkPort(`${f}.nodePort`, p.nodePort as number, spec, oldSpec, seenNodePorts));
      }
    }
    if (!['None', 'ClientIP'].includes(spec.sessionAffinity as string)) causes.push(fieldUnsupported('spec.sessionAffinity', spec.sessionAffinity, ['ClientIP', 'None']));
    const timeout = isObject(spec.sessionAffinityConfig) && isObject(spec.sessionAffinityConfig.clientIP) ? spec.sessionAffinityConfig.clientIP.timeoutSeconds : undefined;
    if (timeout !== undefined && (!Number.isInteger(timeout) || (timeout as number) < 1 || (timeout as number) > 86400)) {
      causes.push(fieldInvalid('spec.sessionAffinityConfig.clientIP.timeoutSeconds', timeout, 'must be greater than 0 and less than 86400'));
    }
    if (spec.externalTrafficPolicy !== undefined) {
      if (!isExternal(spec)) causes.push(fieldInvalid('spec.externalTrafficPolicy', spec.externalTrafficPolicy, 'may only be set for externally-accessible services'));
      else if (!POLICIES.includes(spec.externalTrafficPolicy as (typeof POLICIES)[number])) causes.push(fieldUnsupported('spec.externalTrafficPolicy', spec.externalTrafficPolicy, POLICIES));
    }
    if (spec.internalTrafficPolicy !== undefined && !POLICIES.includes(spec.internalTrafficPolicy as (typeof POLICIES)[number])) {
      causes.push(fieldUnsupported('spec.internalTrafficPolicy', spec.internalTrafficPolicy, POLICIES));
    }
    if (spec.healthCheckNodePort !== undefined) {
      if (!needsHealthCheck(spec)) causes.push(fieldInvalid('spec.healthCheckNodePort', spec.healthCheckNodePort, 'may only be set when `type` is \'LoadBalancer\' and `externalTrafficPolicy` is \'Local\''));
      else if (!Number.isInteger(spec.healthCheckNodePort)) causes.push(fieldInvalid('spec.healthCheckNodePort', spec.healthCheckNodePort, 'must be an integer'));
      else if (oldSpec && needsHealthCheck(oldSpec) && oldSpec.healthCheckNodePort !== spec.healthCheckNodePort) causes.push(fieldImmutable('spec.healthCheckNodePort', spec.healthCheckNodePort));
      else causes.push(...this.checkPort('spec.healthCheckNodePort', spec.healthCheckNodePort as number, spec, oldSpec, seenNodePorts));
    }
    if (spec.loadBalancerIP !== undefined && spec.loadBalancerIP !== '') {
      if (type !== 'LoadBalancer') causes.push(fieldForbidden('spec.loadBalancerIP', "may only be used when `type` is 'LoadBalancer'"));
      else if (typeof spec.loadBalancerIP !== 'string' || !parseIp(spec.loadBalancerIP)) causes.push(fieldInvalid('spec.loadBalancerIP', spec.loadBalancerIP, 'must be a valid IP address'));
    }
    if (spec.loadBalancerClass !== undefined && spec.loadBalancerClass !== null) {
      if (type !== 'LoadBalancer') causes.push(fieldForbidden('spec.loadBalancerClass', "may only be used when `type` is 'LoadBalancer'"));
      else if (typeof spec.loadBalancerClass !== 'string' || !/^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/.test(spec.loadBalancerClass)) {
        causes.push(fieldInvalid('spec.loadBalancerClass', spec.loadBalancerClass, 'must be a qualified name'));
      }
    }
    if (oldSpec && oldSpec.type === 'LoadBalancer' && type === 'LoadBalancer' && (oldSpec.loadBalancerClass ?? null) !== (spec.loadBalancerClass ?? null)) {
      causes.push(fieldImmutable('spec.loadBalancerClass', spec.loadBalancerClass ?? null));
    }
    if (spec.allocateLoadBalancerNodePorts !== undefined && type !== 'LoadBalancer') causes.push(fieldForbidden('spec.allocateLoadBalancerNodePorts', "may only be used when `type` is 'LoadBalancer'"));
    if (type !== 'ExternalName') causes.push(...this.validateClusterIPs(spec, oldSpec));
    return causes;
  }

  private validateClusterIPs(spec: JsonObject, oldSpec: JsonObject | undefined): Cause[] {
    const causes: Cause[] = [];
    if (!FAMILY_POLICIES.includes(spec.ipFamilyPolicy as (typeof FAMILY_POLICIES)[number])) {
      return [fieldUnsupported('spec.ipFamilyPolicy', spec.ipFamilyPolicy, FAMILY_POLICIES)];
    }
    const fams = spec.ipFamilies as Json[];
    for (const [i, f] of fams.entries()) {
      if (f !== 'IPv4' && f !== 'IPv6') causes.push(fieldUnsupported(`spec.ipFamilies[${i}]`, f, ['IPv4', 'IPv6']));
      else if (!this.families.some((x) => familyName(x) === f)) causes.push(fieldInvalid(`spec.ipFamilies[${i}]`, f, 'not configured on this cluster'));
    }
    if (fams.length > 2 || (fams.length === 2 && fams[0] === fams[1])) causes.push(fieldInvalid('spec.ipFamilies', fams, 'may specify no more than one IP for each IP family'));
    if (spec.ipFamilyPolicy === 'SingleStack' && fams.length > 1) causes.push(fieldInvalid('spec.ipFamilies', fams, 'must be a single family when ipFamilyPolicy is SingleStack'));
    if (spec.ipFamilyPolicy === 'RequireDualStack' && this.families.length < 2) causes.push(fieldInvalid('spec.ipFamilyPolicy', 'RequireDualStack', 'this cluster is not configured for dual-stack services'));
    if (causes.length > 0) return causes;
    if (spec.clusterIP !== undefined && spec.clusterIP !== '' && spec.clusterIP !== 'None') {
      const ips = Array.isArray(spec.clusterIPs) ? (spec.clusterIPs as Json[]) : [spec.clusterIP];
      if (ips[0] !== spec.clusterIP) causes.push(fieldInvalid('spec.clusterIPs[0]', ips[0] ?? null, 'must match `clusterIP`'));
      spec.clusterIPs = ips;
      const oldIPs = oldSpec && Array.isArray(oldSpec.clusterIPs) ? (oldSpec.clusterIPs as Json[]) : [];
      for (const [i, ip] of ips.entries()) {
        const f = i === 0 ? 'spec.clusterIP' : `spec.clusterIPs[${i}]`;
        if (oldIPs[i] !== undefined && oldIPs[i] !== ip) {
          causes.push(fieldImmutable(f, ip));
          continue;
        }
        if (oldIPs[i] === ip) continue;
        const parsed = typeof ip === 'string' ? parseIp(ip) : undefined;
        if (!parsed) {
          causes.push(fieldInvalid(f, ip, 'must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)'));
          continue;
        }
        const want = fams[i];
        if (want !== undefined && familyName(parsed.family) !== want) causes.push(fieldInvalid(f, ip, `expected an ${want} value as indicated by \`ipFamilies[${i}]\``));
        const range = this.ranges.find((r) => r.family === parsed.family);
        if (!range || parsed.value <= range.first || parsed.value > range.last) {
          causes.push(fieldInvalid(f, ip, `provided IP is not in the valid range. The range of valid IPs is ${range?.text ?? this.ranges[0]!.text}`));
        } else if (this.usedIPs.has(formatIp(parsed))) causes.push(fieldInvalid(f, ip, 'provided IP is already allocated'));
      }
    } else if (oldSpec && typeof oldSpec.clusterIP === 'string' && oldSpec.clusterIP !== '' && oldSpec.type !== 'ExternalName' && spec.clusterIP !== oldSpec.clusterIP && spec.clusterIP !== undefined) {
      causes.push(fieldImmutable('spec.clusterIP', spec.clusterIP));
    }
    return causes;
  }

  private checkPort(field: string, port: number, spec: JsonObject, oldSpec: JsonObject | undefined, seen: Set<number>): Cause[] {
    const [lo, hi] = this.opts.nodePortRange;
    if (port < lo || port > hi) return [fieldInvalid(field, port, `provided port is not in the valid range. The range of valid ports is ${lo}-${hi}`)];
    if (seen.has(port)) return [fieldDuplicate(field, port)];
    seen.add(port);
    const mine = oldSpec ? [...ports(oldSpec).map((p) => p.nodePort), oldSpec.healthCheckNodePort].includes(port) : false;
    if (!mine && this.usedPorts.has(port)) return [fieldInvalid(field, port, 'provided port is already allocated')];
    void spec;
    return [];
  }

  private allocateIP(family: Family, _owner: string): string | undefined {
    const r = this.ranges.find((x) => x.family === family);
    if (!r) return undefined;
    // Lowest free first, skipping the network address (and broadcast for IPv4), like a fresh cluster. The
    // scan starts at a cursor so that thousands of Services do not cost a scan of the whole range each.
    const first = r.first + 1n;
    const last = family === 4 ? r.last - 1n : r.last;
    const size = last - first + 1n;
    if (size <= 0n) return undefined;
    const start = this.cursors.get(family) ?? first;
    for (let i = 0n; i < size; i++) {
      const v = first + ((start - first + i) % size);
      const ip = formatIp({ family, value: v });
      if (!this.usedIPs.has(ip)) {
        this.cursors.set(family, v + 1n > last ? first : v + 1n);
        return ip;
      }
    }
    return undefined;
  }

  private allocatePort(_owner: string, taken: Set<number>): number | undefined {
    const [lo, hi] = this.opts.nodePortRange;
    const size = hi - lo + 1;
    const start = Math.floor(this.random() * size);
    for (let i = 0; i < size; i++) {
      const p = lo + ((start + i) % size);
      if (!this.usedPorts.has(p) && !taken.has(p)) return p;
    }
    return undefined;
  }
}

function ownerOf(svc: JsonObject): string {
  const m = (svc.metadata ?? {}) as JsonObject;
  return `${String(m.namespace)}/${String(m.name)}`;
}

function clusterIPsOf(spec: JsonObject): string[] {
  if (Array.isArray(spec.clusterIPs)) return spec.clusterIPs.filter((x): x is string => typeof x === 'string' && x !== 'None').map((x) => parseIp(x)).filter((x) => x !== undefined).map(formatIp);
  return typeof spec.clusterIP === 'string' && parseIp(spec.clusterIP) ? [formatIp(parseIp(spec.clusterIP)!)] : [];
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
