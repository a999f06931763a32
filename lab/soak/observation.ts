// One look at the whole system, taken by a single guest script (few processes: everything is slow under
// emulation): the API's Services, Nodes and Events; per LB host the kernel's IPVS table (`ipvsadm -S -n`),
// the addresses on eth0, the IPVS sync daemons, and the daemon's ledger, health and VRRP view from its REST
// API. The script text and the parsers are pure; the fixture runs the script.
import { API_HOST, HOSTS, NAMESPACE } from './world.js';

// ---- what an observation holds ---------------------------------------------------------------------

export interface KubeService {
  metadata: { name: string; namespace?: string; uid: string; creationTimestamp?: string; annotations?: Record<string, string> };
  spec: {
    type?: string;
    loadBalancerIP?: string;
    loadBalancerClass?: string;
    ports?: { name?: string; port: number; protocol?: string; nodePort?: number }[];
    sessionAffinity?: string;
    externalTrafficPolicy?: string;
  };
  status?: { loadBalancer?: { ingress?: { ip?: string; ipMode?: string }[] } };
}

export interface KubeNode {
  metadata: { name: string; labels?: Record<string, string>; deletionTimestamp?: string };
  status?: { addresses?: { type: string; address: string }[]; conditions?: { type: string; status: string; lastTransitionTime?: string }[] };
}

export interface KubeEvent {
  metadata: { name: string };
  involvedObject: { kind?: string; name?: string; uid?: string };
  reason?: string;
  message?: string;
  type?: string;
  count?: number;
  firstTimestamp?: string;
  lastTimestamp?: string;
  source?: { component?: string; host?: string };
}

export interface KernelDest {
  address: string;
  port: number;
  /** 'dr' (-g), 'tun' (-i), 'nat' (-m). */
  forwarding: string;
  weight: number;
}

export interface KernelService {
  /** `TCP/192.0.2.1:80`, like the model's keys. */
  key: string;
  scheduler: string;
  flags: string[];
  persistent: number | undefined;
  dests: KernelDest[];
}

export interface AllocationRow {
  address: string;
  pool: string;
  namespace: string;
  name: string;
  uid: string;
  sharingKey: string | null;
  ports: string[];
  orphaned: boolean;
}

export interface HealthView {
  ready: boolean;
  checks: Record<string, boolean>;
  messages: string[];
}

export interface VrrpView {
  name: string;
  state: string;
  vips: string[];
}

/** A value or the reason it could not be read (a daemon down mid-restart, a malformed answer). */
export type Read<T> = { ok: true; value: T } | { ok: false; error: string };

export interface HostObservation {
  host: string;
  ipvs: Read<KernelService[]>;
  /** IPv4 addresses on eth0 (without prefix length). */
  addresses: Read<string[]>;
  sync: Read<{ master: boolean; backup: boolean }>;
  allocations: Read<AllocationRow[]>;
  health: Read<HealthView>;
  vrrp: Read<VrrpView[]>;
}

export interface Observation {
  /** Guest clock (ms) when the look began and ended. */
  at: number;
  end: number;
  services: Read<KubeService[]>;
  nodes: Read<KubeNode[]>;
  events: Read<KubeEvent[]>;
  hosts: HostObservation[];
}

// ---- the guest script ------------------------------------------------------------------------------

export const MARK = '@@SOAK';

/** Ends each transfer of a multi-URL curl, so one process (one TLS handshake) reads several documents. */
export const SEP = '@@SOAK-SEP';

export function observationScript(o: { caFile: string; tokenFile: string; daemonApiPort?: number }): string {
  const port = o.daemonApiPort ?? 9742;
  const api = `https://127.0.0.1:${API_HOST.port}`;
  const lines = [
    'set -u',
    `echo "${MARK} T $(date +%s%3N)"`,
    `ip netns exec ${API_HOST.name} bash -c '`,
    `  echo "${MARK} KUBE"`,
    `  curl -sS --max-time 10 --cacert ${o.caFile} -H "Authorization: Bearer $(cat ${o.tokenFile})" -w "\n${SEP}\n" ${api}/api/v1/namespaces/${NAMESPACE}/services ${api}/api/v1/nodes ${api}/api/v1/namespaces/${NAMESPACE}/events 2>&1`,
    `'`,
  ];
  for (const h of HOSTS) {
    const d = `http://127.0.0.1:${port}`;
    lines.push(
      `ip netns exec ${h.name} bash -c '`,
      `  echo "${MARK} IPVS ${h.name}"; ipvsadm -S -n 2>&1 || echo "@@ERR ipvsadm exit $?"`,
      `  echo "${MARK} ADDR ${h.name}"; ip -o -4 addr show dev eth0 2>&1`,
      `  echo "${MARK} SYNC ${h.name}"; ipvsadm -L --daemon 2>&1`,
      `  echo "${MARK} DAEMON ${h.name}"; curl -sS --max-time 5 -w "\n${SEP}\n" "${d}/api/v1/allocations?limit=1000" ${d}/readyz ${d}/api/v1/vrrp 2>&1`,
      `'`,
    );
  }
  lines.push(`echo "${MARK} T2 $(date +%s%3N)"`, `echo "${MARK} END"`);
  return `${lines.join('\n')}\n`;
}

// ---- parsers ---------------------------------------------------------------------------------------

const ok = <T>(value: T): Read<T> => ({ ok: true, value });
const fail = <T>(error: string): Read<T> => ({ ok: false, error });

function json<T>(text: string | undefined, what: string, pick: (doc: Record<string, unknown>) => T): Read<T> {
  if (text === undefined) return fail(`${what}: missing from the observation`);
  const t = text.trim();
  try {
    const doc = JSON.parse(t) as Record<string, unknown>;
    return ok(pick(doc));
  } catch (err) {
    return fail(`${what}: ${(err as Error).message}: ${t.slice(0, 300)}`);
  }
}

function items<T>(doc: Record<string, unknown>, what: string): T[] {
  if (!Array.isArray(doc.items)) throw new Error(`${what} has no items list`);
  return doc.items as T[];
}

const FWD: Record<string, string> = { '-g': 'dr', '--gatewaying': 'dr', '-i': 'tun', '--ipip': 'tun', '-m': 'nat', '--masquerading': 'nat' };
const PROTO: Record<string, string> = { '-t': 'TCP', '--tcp-service': 'TCP', '-u': 'UDP', '--udp-service': 'UDP', '--sctp-service': 'SCTP' };

/** `ipvsadm -S -n` (restore format) → services with destinations, sorted by key. */
export function parseIpvsSave(text: string): KernelService[] {
  const byKey = new Map<string, KernelService>();
  const keyOf = (proto: string, addr: string) => `${proto}/${addr}`;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    const t = line.split(/\s+/);
    const verb = t[0];
    if (verb !== '-A' && verb !== '-a') throw new Error(`ipvsadm -S: unexpected line ${JSON.stringify(line)}`);
    let key: string | undefined;
    const get = (flag: string): string | undefined => {
      const i = t.indexOf(flag);
      return i >= 0 ? t[i + 1] : undefined;
    };
    for (const [flag, proto] of Object.entries(PROTO)) {
      const v = get(flag);
      if (v !== undefined) key = keyOf(proto, v);
    }
    if (get('-f') !== undefined) key = `FWM/${get('-f')}`;
    if (!key) throw new Error(`ipvsadm -S: no service address in ${JSON.stringify(line)}`);
    if (verb === '-A') {
      const p = get('-p');
      byKey.set(key, {
        key, scheduler: get('-s') ?? '', flags: (get('-b') ?? '').split(',').filter(Boolean).sort(),
        persistent: p === undefined ? (t.includes('-p') ? 300 : undefined) : Number(p), dests: [],
      });
    } else {
      const svc = byKey.get(key);
      if (!svc) throw new Error(`ipvsadm -S: destination before its service in ${JSON.stringify(line)}`);
      const r = get('-r') ?? '';
      const m = /^\[?(.*?)\]?:(\d+)$/.exec(r);
      if (!m) throw new Error(`ipvsadm -S: bad real server ${JSON.stringify(r)}`);
      const fwd = t.find((x) => FWD[x] !== undefined);
      svc.dests.push({ address: m[1]!, port: Number(m[2]), forwarding: fwd ? FWD[fwd]! : 'dr', weight: Number(get('-w') ?? '1') });
    }
  }
  for (const s of byKey.values()) s.dests.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : a.port - b.port));
  return [...byKey.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** `ip -o -4 addr show dev eth0` → the addresses, without prefix length. */
export function parseIpAddr(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /\binet\s+(\d+\.\d+\.\d+\.\d+)\/\d+/.exec(line);
    if (m) out.push(m[1]!);
  }
  if (out.length === 0 && text.trim() !== '') throw new Error(`ip addr: no address in ${JSON.stringify(text.slice(0, 200))}`);
  return out.sort();
}

/** `ipvsadm -L --daemon` → which sync daemons run. */
export function parseSyncDaemons(text: string): { master: boolean; backup: boolean } {
  return { master: /^master sync daemon/m.test(text), backup: /^backup sync daemon/m.test(text) };
}

/** Splits the script's output into its sections (`@@SOAK NAME [HOST]` lines start one). */
export function sections(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let current: string | undefined;
  let buf: string[] = [];
  const flush = () => {
    if (current !== undefined) out.set(current, buf.join('\n'));
  };
  for (const line of text.split('\n')) {
    if (line.startsWith(`${MARK} `)) {
      flush();
      current = line.slice(MARK.length + 1).trim();
      buf = [];
      // Single-line sections carry their value on the marker line (T, T2).
      const m = /^(T2?) (\d+)$/.exec(current);
      if (m) {
        out.set(m[1]!, m[2]!);
        current = undefined;
      }
    } else if (current !== undefined) buf.push(line);
  }
  flush();
  return out;
}

function section<T>(s: Map<string, string>, name: string, parse: (text: string) => T): Read<T> {
  const text = s.get(name);
  if (text === undefined) return fail(`${name}: missing from the observation`);
  try {
    return ok(parse(text));
  } catch (err) {
    return fail(`${name}: ${(err as Error).message}`);
  }
}

/** The documents of a multi-URL curl, in order; a transfer that failed shows its error text instead. */
export function splitTransfers(text: string | undefined, count: number): (string | undefined)[] {
  if (text === undefined) return new Array<undefined>(count).fill(undefined);
  const parts = text.split(`\n${SEP}`).map((p) => p.trim());
  return Array.from({ length: count }, (_, i) => parts[i]);
}

export function parseObservation(text: string): Observation {
  const s = sections(text);
  if (!s.has('END')) throw new Error(`observation incomplete (no END marker):\n${text.slice(-2000)}`);
  const [svcText, nodeText, eventText] = splitTransfers(s.get('KUBE'), 3);
  const hosts = HOSTS.map((h): HostObservation => {
    const [allocText, healthText, vrrpText] = splitTransfers(s.get(`DAEMON ${h.name}`), 3);
    return {
    host: h.name,
    ipvs: section(s, `IPVS ${h.name}`, (t) => {
      if (t.includes('@@ERR')) throw new Error(t.trim());
      return parseIpvsSave(t);
    }),
    addresses: section(s, `ADDR ${h.name}`, parseIpAddr),
    sync: section(s, `SYNC ${h.name}`, parseSyncDaemons),
    allocations: json(allocText, `allocations of ${h.name}`, (d) => items<AllocationRow>(d, 'allocations')),
    health: json(healthText, `readyz of ${h.name}`, (d) => {
      if (typeof d.ready !== 'boolean') throw new Error('no ready field');
      return { ready: d.ready, checks: (d.checks ?? {}) as Record<string, boolean>, messages: Array.isArray(d.messages) ? (d.messages as string[]) : [] };
    }),
    vrrp: json(vrrpText, `vrrp of ${h.name}`, (d) => items<VrrpView>(d, 'vrrp')),
    };
  });
  return {
    at: Number(s.get('T') ?? 0),
    end: Number(s.get('T2') ?? 0),
    services: json(svcText, 'services', (d) => items<KubeService>(d, 'services')),
    nodes: json(nodeText, 'nodes', (d) => items<KubeNode>(d, 'nodes')),
    events: json(eventText, 'events', (d) => items<KubeEvent>(d, 'events')),
    hosts,
  };
}
