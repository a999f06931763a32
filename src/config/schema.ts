// Turns parsed YAML into a Config: fills defaults, checks every field and the relations between fields, and
// reports every problem at once. Pure: no file or network access, so reloads and tests use it directly.
import { hostname } from 'node:os';
import { isIP } from 'node:net';
import { parseRange, rangesOverlap, type AddressRange } from '../ipam/range.js';
import { Problems, Section, isMapping, show } from './reader.js';
import {
  drPathMarkers,
  forwardingMethods, logLevels, nodeAddressTypes, schedulers,
  type Config, type LabelSelector, type LabelSelectorRequirement, type PoolConfig, type ServiceAllocation, type VrrpGroupConfig,
} from './types.js';

export const DEFAULT_CONFIG_PATH = '/etc/ipvs-lb/config.yaml';

const dnsLabel = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const dnsSubdomain = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const labelKey = /^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const labelValue = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

const checkDnsLabel = (v: string) => (dnsLabel.test(v) ? undefined : 'must be a lower-case DNS label (a-z, 0-9, "-", at most 63 characters)');
const checkDnsSubdomain = (v: string) => (dnsSubdomain.test(v) ? undefined : 'must be a lower-case DNS name');
const checkAbsolutePath = (v: string) => (v.startsWith('/') && !v.includes('\0') ? undefined : 'must be an absolute path');
// The kernel's IFNAMSIZ is 16 including the terminating NUL; "/" and whitespace are never valid.
const checkInterface = (v: string) => (/^[^\s/:]{1,15}$/.test(v) && v !== '.' && v !== '..' ? undefined : 'must be a network interface name (1-15 characters, no "/", ":" or spaces)');
const checkIp = (v: string) => (isIP(v) ? undefined : 'must be an IPv4 or IPv6 address');
const checkLoadBalancerClass = (v: string) =>
  /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/.test(v) && v.length <= 253
    ? undefined
    : 'must be a label-style name with a domain prefix, for example ipvs-lb.io/external';
// keepalived's router_id and our host name end up in keepalived.conf: keep them to a safe alphabet.
const checkHostName = (v: string) => (/^[A-Za-z0-9]([-A-Za-z0-9_.]{0,62})$/.test(v) ? undefined : 'must be 1-63 characters of letters, digits, "-", "_" or "."');

export function parseListen(text: string): { host: string; port: number } | string {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  if (!m) return 'must be HOST:PORT, with an IPv6 host in brackets ([::1]:9742)';
  const host = m[1]!;
  const port = Number(m[2]);
  if (!isIP(host)) return 'must name an IP address to listen on, not a host name';
  if (port < 1 || port > 65535) return 'must have a port between 1 and 65535';
  return { host, port };
}

export const isLoopback = (host: string): boolean => host === '::1' || /^127\./.test(host);

function labelSelector(value: unknown, path: string, problems: Problems): LabelSelector | undefined {
  const s = new Section(value, path, problems, ['matchLabels', 'matchExpressions']);
  const matchLabels: Record<string, string> = {};
  const rawLabels = s.raw('matchLabels');
  if (rawLabels !== undefined && rawLabels !== null) {
    if (!isMapping(rawLabels)) problems.add(s.at('matchLabels'), 'must be a mapping of label keys to values', rawLabels);
    else
      for (const [k, v] of Object.entries(rawLabels)) {
        const p = `${s.at('matchLabels')}.${k}`;
        if (!labelKey.test(k)) problems.add(p, 'is not a valid label key', k);
        else if (typeof v !== 'string' || !labelValue.test(v)) problems.add(p, 'must be a valid label value (a string)', v);
        else matchLabels[k] = v;
      }
  }
  const matchExpressions = s.list('matchExpressions', (item, p): LabelSelectorRequirement | undefined => {
    const e = new Section(item, p, problems, ['key', 'operator', 'values']);
    const key = e.string('key', { required: true, check: (k) => (labelKey.test(k) ? undefined : 'is not a valid label key') });
    const operator = e.oneOf('operator', ['In', 'NotIn', 'Exists', 'DoesNotExist'] as const);
    if (!e.has('operator')) problems.add(e.at('operator'), 'is required');
    const values = e.stringList('values');
    if (operator === 'In' || operator === 'NotIn') {
      if (values.length === 0) problems.add(e.at('values'), `must not be empty for operator ${operator}`, e.raw('values') ?? []);
    } else if (operator && values.length > 0) {
      problems.add(e.at('values'), `must be empty for operator ${operator}`, values);
    }
    return key && operator ? { key, operator, values } : undefined;
  });
  return { matchLabels, matchExpressions };
}

function serviceAllocation(s: Section): ServiceAllocation | undefined {
  if (!s.has('serviceAllocation')) return undefined;
  const a = s.child('serviceAllocation', ['priority', 'namespaces', 'namespaceSelectors', 'serviceSelectors']);
  return {
    priority: a.integer('priority', { min: 0 }),
    namespaces: a.stringList('namespaces', checkDnsLabel),
    namespaceSelectors: a.list('namespaceSelectors', (v, p) => labelSelector(v, p, a.problems)),
    serviceSelectors: a.list('serviceSelectors', (v, p) => labelSelector(v, p, a.problems)),
  };
}

function pool(value: unknown, path: string, problems: Problems): PoolConfig | undefined {
  const s = new Section(value, path, problems, [
    'name', 'addresses', 'avoidBuggyIPs', 'autoAssign', 'serviceAllocation', 'forwarding', 'scheduler', 'vrrpGroup',
  ]);
  const name = s.string('name', { required: true, check: checkDnsLabel });
  const addresses = s.list('addresses', (item, p): AddressRange | undefined => {
    const r = parseRange(item);
    if (!r.ok) {
      problems.add(p, r.error, item);
      return undefined;
    }
    return r.range;
  }, { required: true, nonEmpty: true });
  return {
    name: name ?? '',
    addresses,
    avoidBuggyIPs: s.boolean('avoidBuggyIPs', false),
    autoAssign: s.boolean('autoAssign', true),
    serviceAllocation: serviceAllocation(s),
    forwarding: s.oneOf('forwarding', forwardingMethods),
    scheduler: s.oneOf('scheduler', schedulers),
    vrrpGroup: s.string('vrrpGroup', { check: checkDnsLabel }),
  };
}

function vrrpGroup(value: unknown, path: string, problems: Problems, defaultInterface: string | undefined): VrrpGroupConfig | undefined {
  const s = new Section(value, path, problems, [
    'name', 'virtualRouterId', 'priority', 'interface', 'advertIntervalSeconds', 'preempt', 'preemptDelaySeconds',
    'peers', 'unicastSourceIp', 'trackInterfaces',
  ]);
  const name = s.string('name', { required: true, check: checkDnsLabel });
  const virtualRouterId = s.integer('virtualRouterId', { required: true, min: 1, max: 255 });
  // 255 is reserved by VRRP for the owner of the real address; we never own the VIPs that way.
  const priority = s.integer('priority', { required: true, min: 1, max: 254 });
  const iface = s.string('interface', { default: defaultInterface, check: checkInterface });
  // VRRPv3 carries the interval in centiseconds (12 bits): 0.01 s to 40.95 s. Below 0.05 s both routers
  // turn master for a moment on a busy host, so that is the floor.
  const advert = s.number('advertIntervalSeconds', { default: 0.1, min: 0.05, max: 40.95 });
  if (advert !== undefined && Math.abs(advert * 100 - Math.round(advert * 100)) > 1e-9) {
    problems.add(s.at('advertIntervalSeconds'), 'must be a multiple of 0.01 s (VRRPv3 counts centiseconds)', advert);
  }
  const peers = s.stringList('peers', checkIp);
  const unicastSourceIp = s.string('unicastSourceIp', { check: checkIp });
  if (unicastSourceIp && peers.includes(unicastSourceIp)) {
    problems.add(s.at('peers'), `must not contain this host's own unicastSourceIp ${unicastSourceIp}`, peers);
  }
  const families = new Set([...peers, ...(unicastSourceIp ? [unicastSourceIp] : [])].map((p) => isIP(p)));
  if (families.size > 1) problems.add(s.at('peers'), 'must all be of one address family, as unicastSourceIp', peers);
  if (!name || virtualRouterId === undefined || priority === undefined || !iface) return undefined;
  return {
    name, virtualRouterId, priority, interface: iface,
    advertIntervalSeconds: advert ?? 0.1,
    preempt: s.boolean('preempt', false),
    preemptDelaySeconds: s.integer('preemptDelaySeconds', { default: 0, min: 0, max: 1000 }) ?? 0,
    peers, unicastSourceIp,
    trackInterfaces: s.stringList('trackInterfaces', checkInterface),
  };
}

const TOP_KEYS = [
  'hostName', 'interface', 'stateDir', 'kubernetes', 'pools', 'ipam', 'forwarding', 'scheduler', 'backends',
  'reconcile', 'sysctl', 'vrrp', 'api', 'metrics', 'healthCheck', 'logging',
] as const;

export type ParseResult = { ok: true; config: Config } | { ok: false; problems: string[] };

export function parseConfig(raw: unknown, source = '(inline)'): ParseResult {
  const problems = new Problems();
  const top = new Section(raw, '', problems, TOP_KEYS);
  if (raw === undefined || raw === null) problems.add('', 'the file is empty; at least interface and pools are required');

  const hostName = top.string('hostName', { default: hostname().split('.')[0], check: checkHostName })!;
  const iface = top.string('interface', { required: true, check: checkInterface });
  const stateDir = top.string('stateDir', { default: '/var/lib/ipvs-lb', check: checkAbsolutePath })!;

  const k = top.child('kubernetes', ['kubeconfig', 'inCluster', 'qps', 'burst', 'loadBalancerClass', 'strictClass', 'resyncSeconds', 'lease']);
  const inCluster = k.boolean('inCluster', false);
  const kubeconfig = k.string('kubeconfig', { default: inCluster ? undefined : '/etc/ipvs-lb/kubeconfig', check: checkAbsolutePath });
  if (inCluster && k.has('kubeconfig')) problems.add(k.at('kubeconfig'), 'must not be set together with inCluster: true', k.raw('kubeconfig'));
  const qps = k.number('qps', { default: 20, min: 0.1, max: 10000 })!;
  const burst = k.integer('burst', { default: 40, min: 1, max: 100000 })!;
  if (burst < qps) problems.add(k.at('burst'), `must be at least qps (${qps})`, burst);
  const l = k.child('lease', ['namespace', 'name', 'durationSeconds', 'renewDeadlineSeconds', 'retryPeriodSeconds']);
  const lease = {
    namespace: l.string('namespace', { default: 'ipvs-lb', check: checkDnsLabel })!,
    name: l.string('name', { default: 'ipvs-lb-allocator', check: checkDnsSubdomain })!,
    durationSeconds: l.integer('durationSeconds', { default: 15, min: 2, max: 3600 })!,
    renewDeadlineSeconds: l.integer('renewDeadlineSeconds', { default: 10, min: 1, max: 3600 })!,
    retryPeriodSeconds: l.integer('retryPeriodSeconds', { default: 2, min: 1, max: 3600 })!,
  };
  if (lease.renewDeadlineSeconds >= lease.durationSeconds) {
    problems.add(l.at('renewDeadlineSeconds'), `must be less than ${l.at('durationSeconds')} (${lease.durationSeconds})`, lease.renewDeadlineSeconds);
  }
  if (lease.retryPeriodSeconds >= lease.renewDeadlineSeconds) {
    problems.add(l.at('retryPeriodSeconds'), `must be less than ${l.at('renewDeadlineSeconds')} (${lease.renewDeadlineSeconds})`, lease.retryPeriodSeconds);
  }
  const kubernetes = {
    kubeconfig, inCluster, qps, burst,
    loadBalancerClass: k.string('loadBalancerClass', { default: 'ipvs-lb.io/external', check: checkLoadBalancerClass })!,
    strictClass: k.boolean('strictClass', false),
    resyncSeconds: k.integer('resyncSeconds', { default: 300, min: 10, max: 86400 })!,
    lease,
  };

  const pools = top.list('pools', (v, p) => pool(v, p, problems), { required: true, nonEmpty: true });
  const seenPools = new Map<string, number>();
  pools.forEach((p, i) => {
    if (!p.name) return;
    const prev = seenPools.get(p.name);
    if (prev !== undefined) problems.add(`pools[${i}].name`, `duplicates pools[${prev}].name`, p.name);
    else seenPools.set(p.name, i);
  });
  // Overlap anywhere would let two pools hand out one address. A sweep in address order finds every range
  // that overlaps an earlier one in O(n log n) and reports it once, naming the range it runs into (a
  // pairwise check grew quadratically, in time and in problems, with thousands of clashing ranges).
  const entries = pools.flatMap((p, i) => p.addresses.map((r, j) => ({ pool: p.name, i, j, r })));
  const byAddress = [...entries].sort((x, y) => x.r.family - y.r.family || (x.r.first < y.r.first ? -1 : x.r.first > y.r.first ? 1 : 0) || x.i - y.i || x.j - y.j);
  const clashes: Array<{ x: (typeof entries)[number]; y: (typeof entries)[number] }> = [];
  let reach: (typeof entries)[number] | undefined;
  for (const e of byAddress) {
    if (reach && reach.r.family === e.r.family && e.r.first <= reach.r.last && rangesOverlap(reach.r, e.r)) {
      const later = reach.i > e.i || (reach.i === e.i && reach.j > e.j);
      clashes.push(later ? { x: e, y: reach } : { x: reach, y: e });
    }
    if (!reach || reach.r.family !== e.r.family || e.r.last > reach.r.last) reach = e;
  }
  clashes.sort((a, b) => a.y.i - b.y.i || a.y.j - b.y.j);
  for (const { x, y } of clashes) {
    problems.add(`pools[${y.i}].addresses[${y.j}]`, `overlaps pools[${x.i}].addresses[${x.j}] ${show(x.r.text)} of pool "${x.pool}"`, y.r.text);
  }

  const ipamSection = top.child('ipam', ['releaseQuarantineSeconds']);
  const ipam = { releaseQuarantineSeconds: ipamSection.integer('releaseQuarantineSeconds', { default: 60, min: 0, max: 86400 * 30 })! };
  const forwarding = top.oneOf('forwarding', forwardingMethods, 'dr')!;
  const scheduler = top.oneOf('scheduler', schedulers, 'mh')!;

  const b = top.child('backends', ['addressType', 'nodeSelector', 'notReadyGraceSeconds', 'weightByEndpoints']);
  const backends = {
    addressType: b.oneOf('addressType', nodeAddressTypes, 'InternalIP')!,
    nodeSelector: b.has('nodeSelector') ? labelSelector(b.raw('nodeSelector'), b.at('nodeSelector'), problems) : undefined,
    notReadyGraceSeconds: b.integer('notReadyGraceSeconds', { default: 60, min: 0, max: 86400 })!,
    weightByEndpoints: b.boolean('weightByEndpoints', false),
  };

  const r = top.child('reconcile', ['resyncSeconds', 'coalesceMs', 'verifyIntervalMs', 'verifyServices']);
  const reconcile = {
    resyncSeconds: r.integer('resyncSeconds', { default: 30, min: 1, max: 86400 })!,
    coalesceMs: r.integer('coalesceMs', { default: 50, min: 0, max: 10000 })!,
    verifyIntervalMs: r.integer('verifyIntervalMs', { default: 1000, min: 0, max: 600000 })!,
    verifyServices: r.integer('verifyServices', { default: 100, min: 1, max: 100000 })!,
  };
  // Shorter than that, the rolling verification would keep the kernel busy with reads that find nothing.
  if (reconcile.verifyIntervalMs > 0 && reconcile.verifyIntervalMs < 100) problems.add(r.at('verifyIntervalMs'), 'must be 0 (off) or at least 100', reconcile.verifyIntervalMs);
  const sysctl = { manage: top.child('sysctl', ['manage']).boolean('manage', false) };

  const v = top.child('vrrp', ['enabled', 'routerId', 'keepalivedPath', 'configPath', 'garpRepeat', 'garpIntervalMs', 'syncDaemon', 'groups']);
  const vrrpEnabled = v.boolean('enabled', true);
  const groups = v.list('groups', (g, p) => vrrpGroup(g, p, problems, iface), { required: vrrpEnabled, nonEmpty: vrrpEnabled });
  const seenGroups = new Map<string, number>();
  const seenVrid = new Map<string, number>();
  groups.forEach((g, i) => {
    const prev = seenGroups.get(g.name);
    if (prev !== undefined) problems.add(`vrrp.groups[${i}].name`, `duplicates vrrp.groups[${prev}].name`, g.name);
    else seenGroups.set(g.name, i);
    const vridKey = `${g.interface}/${g.virtualRouterId}`;
    const prevVrid = seenVrid.get(vridKey);
    if (prevVrid !== undefined) {
      problems.add(`vrrp.groups[${i}].virtualRouterId`, `is already used on interface ${g.interface} by vrrp.groups[${prevVrid}]`, g.virtualRouterId);
    } else seenVrid.set(vridKey, i);
  });
  pools.forEach((p, i) => {
    if (p.vrrpGroup && vrrpEnabled && !seenGroups.has(p.vrrpGroup)) {
      problems.add(`pools[${i}].vrrpGroup`, `names no group in vrrp.groups (${[...seenGroups.keys()].join(', ') || 'none'})`, p.vrrpGroup);
    }
  });
  const sd = v.child('syncDaemon', ['enabled', 'interface', 'syncId']);
  const vrrp = {
    enabled: vrrpEnabled,
    routerId: v.string('routerId', { default: hostName, check: checkHostName })!,
    keepalivedPath: v.string('keepalivedPath', { default: '/usr/sbin/keepalived', check: checkAbsolutePath })!,
    configPath: v.string('configPath', { default: '/run/ipvs-lb/keepalived.conf', check: checkAbsolutePath })!,
    garpRepeat: v.integer('garpRepeat', { default: 3, min: 0, max: 100 })!,
    garpIntervalMs: v.integer('garpIntervalMs', { default: 100, min: 0, max: 10000 })!,
    syncDaemon: {
      enabled: sd.boolean('enabled', true),
      interface: sd.string('interface', { default: iface, check: checkInterface }) ?? '',
      syncId: sd.integer('syncId', { default: 1, min: 0, max: 255 })!,
    },
    groups,
  };

  const a = top.child('api', ['listen', 'tokenFile', 'tls']);
  let listen = { host: '127.0.0.1', port: 9742 };
  const listenText = a.string('listen');
  if (listenText) {
    const parsed = parseListen(listenText);
    if (typeof parsed === 'string') problems.add(a.at('listen'), parsed, listenText);
    else listen = parsed;
  }
  const tokenFile = a.string('tokenFile', { check: checkAbsolutePath });
  if (!isLoopback(listen.host) && !tokenFile && !a.has('tokenFile')) {
    problems.add(a.at('tokenFile'), `is required when api.listen is not a loopback address (listen is ${listenText})`);
  }
  let tls: { certFile: string; keyFile: string } | undefined;
  if (a.has('tls')) {
    const t = a.child('tls', ['certFile', 'keyFile']);
    const certFile = t.string('certFile', { required: true, check: checkAbsolutePath });
    const keyFile = t.string('keyFile', { required: true, check: checkAbsolutePath });
    if (certFile && keyFile) tls = { certFile, keyFile };
  }

  const h = top.child('healthCheck', ['enabled', 'intervalSeconds', 'timeoutSeconds', 'rise', 'fall', 'kubeProxyHealthPort', 'drPathCheck', 'drainGraceSeconds', 'maxConcurrentProbes', 'flapDamping', 'drPath']);
  const fd = h.child('flapDamping', ['enabled', 'halfLifeSeconds', 'suppressThreshold', 'reuseThreshold', 'maxSuppressSeconds']);
  const flapDamping = {
    enabled: fd.boolean('enabled', true),
    halfLifeSeconds: fd.number('halfLifeSeconds', { default: 60, min: 1, max: 86400 })!,
    suppressThreshold: fd.number('suppressThreshold', { default: 2.5, min: 1, max: 100 })!,
    reuseThreshold: fd.number('reuseThreshold', { default: 1, min: 0.01, max: 100 })!,
    maxSuppressSeconds: fd.integer('maxSuppressSeconds', { default: 600, min: 1, max: 86400 })!,
  };
  if (flapDamping.reuseThreshold >= flapDamping.suppressThreshold) {
    problems.add(fd.at('reuseThreshold'), `must be less than ${fd.at('suppressThreshold')} (${flapDamping.suppressThreshold})`, flapDamping.reuseThreshold);
  }
  const dp = h.child('drPath', ['fwmarkBase', 'sourcePorts', 'probesPerNode', 'marker']);
  const drPath = {
    marker: dp.oneOf('marker', drPathMarkers, 'nft')!,
    fwmarkBase: dp.integer('fwmarkBase', { default: 0x1b5a0000, min: 1, max: 0xffff0000 })!,
    sourcePorts: { first: 61000, last: 65535 },
    probesPerNode: dp.integer('probesPerNode', { default: 4, min: 1, max: 64 })!,
  };
  const portsText = dp.string('sourcePorts');
  if (portsText !== undefined) {
    const m = /^(\d{1,5})-(\d{1,5})$/.exec(portsText.trim());
    const first = m ? Number(m[1]) : NaN;
    const last = m ? Number(m[2]) : NaN;
    if (!m || first < 1024 || last > 65535 || first > last) problems.add(dp.at('sourcePorts'), 'must be a port range FIRST-LAST within 1024-65535', portsText);
    else if (last - first + 1 < drPath.probesPerNode) problems.add(dp.at('sourcePorts'), `must hold at least probesPerNode (${drPath.probesPerNode}) ports`, portsText);
    else drPath.sourcePorts = { first, last };
  }
  const healthCheck = {
    enabled: h.boolean('enabled', true),
    intervalSeconds: h.number('intervalSeconds', { default: 2, min: 0.1, max: 3600 })!,
    timeoutSeconds: h.number('timeoutSeconds', { default: 1, min: 0.05, max: 3600 })!,
    rise: h.integer('rise', { default: 2, min: 1, max: 100 })!,
    fall: h.integer('fall', { default: 3, min: 1, max: 100 })!,
    // `false` turns kube-proxy's node health probe off (for clusters without kube-proxy, such as Cilium's
    // replacement that serves health elsewhere).
    kubeProxyHealthPort: h.raw('kubeProxyHealthPort') === false ? undefined : h.integer('kubeProxyHealthPort', { default: 10256, min: 1, max: 65535 }),
    drPathCheck: h.boolean('drPathCheck', true),
    drainGraceSeconds: h.integer('drainGraceSeconds', { default: 30, min: 0, max: 86400 })!,
    maxConcurrentProbes: h.integer('maxConcurrentProbes', { default: 256, min: 1, max: 65536 })!,
    flapDamping, drPath,
  };
  if (healthCheck.timeoutSeconds >= healthCheck.intervalSeconds) {
    problems.add(h.at('timeoutSeconds'), `must be less than ${h.at('intervalSeconds')} (${healthCheck.intervalSeconds})`, healthCheck.timeoutSeconds);
  }

  const logging = { level: top.child('logging', ['level']).oneOf('level', logLevels, 'info')! };
  // Per-real-server series grow with Services × nodes (10,000 × 500 would be 5 million series per metric).
  const metrics = { maxRealServers: top.child('metrics', ['maxRealServers']).integer('maxRealServers', { default: 2000, min: 0, max: 1_000_000 })! };

  if (!problems.empty) return { ok: false, problems: problems.list };
  return {
    ok: true,
    config: {
      source, hostName, interface: iface!, stateDir, kubernetes, pools,
      ipam, forwarding, scheduler, backends, reconcile, sysctl, vrrp,
      api: { listen, tokenFile, tls }, metrics, healthCheck, logging,
    },
  };
}
