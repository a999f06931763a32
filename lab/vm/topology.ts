// The guest's network: named namespaces for LB hosts, Kubernetes nodes, clients and a router, on a switch
// (bridges in their own namespace, so the guest's root namespace stays empty). Nodes accept VIP traffic the
// ways real nodes do, so a test sees what a real cluster would do with what the LB sends:
//   dnat       a DNAT rule for VIP:port in the nat PREROUTING chain (kube-proxy's iptables mode, through
//              iptables-legacy); the VIP is on no interface
//   dnat-nft   the same with nftables (kube-proxy's nftables mode); QEMU only, Debian's UML kernel has no
//              nft nat chain (CONFIG_NFT_NAT unset)
//   kube-ipvs0 the VIP on the NOARP dummy kube-ipvs0, left down, with arp_ignore=1/arp_announce=2
//              (kube-proxy's IPVS mode with strictARP)
//   tunl0      the VIP on tunl0 (module ipip) with rp_filter off, for IPVS tunnel forwarding
//   lo         the classic DR real server: the VIP on lo with arp_ignore=1/arp_announce=2
//   none       nothing: the node drops VIP traffic (a negative control)
// Addresses come only from documentation ranges: hosts and nodes on the LAN 198.51.100.0/24, clients on the
// LAN or behind the router on 203.0.113.0/24, VIPs from 192.0.2.0/24. Optional IPv6 (`ip6`, v6 VIPs):
// LAN 2001:db8:100::/64, WAN 2001:db8:203::/64, VIPs 2001:db8:ff::/64.
//
// The builder is a pure function from a spec to one bash script (few processes: everything is slow under
// emulation); applyTopology() runs it and hands back the servers it started as GuestProcess handles.
import { mkdirSync } from 'node:fs';
import ipaddr from 'ipaddr.js';
import { backgroundLaunch } from './guest-scripts.js';
import { shq } from './shell.js';
import type { GuestProcess, Vm } from './vm.js';

export type VipMode = 'dnat' | 'dnat-nft' | 'kube-ipvs0' | 'tunl0' | 'lo' | 'none';

export interface LbHostSpec {
  name: string;
  /** LAN address (198.51.100.0/24). */
  ip: string;
  /** LAN IPv6 address (2001:db8:100::/64). */
  ip6?: string;
  /** VIPs bound on eth0 at start (normally the daemon or keepalived binds them; this is for raw IPVS tests). */
  vips?: string[];
}

export interface NodeSpec {
  name: string;
  /** LAN address (198.51.100.0/24). */
  ip: string;
  /** LAN IPv6 address (2001:db8:100::/64); needed for IPv6 VIPs. Its servers then also listen on IPv6. */
  ip6?: string;
  /** How the node accepts traffic for the VIPs. Default 'kube-ipvs0'. */
  vipMode?: VipMode;
  /** VIPs the node accepts (192.0.2.0/24). */
  vips?: string[];
  /** TCP ports with an HTTP server that answers with the node's name and the addresses it saw. Default [80]. */
  http?: number[];
  /** TCP ports with an echo server. Default none. */
  echo?: number[];
  /**
   * TCP ports with a health server like kube-proxy's (:10256, or a Service's healthCheckNodePort): it answers
   * every GET with the status code in the file healthzFile(runDir, node, port), 200 until a test writes
   * another (setHealthz). Default none.
   */
  healthz?: number[];
}

export interface ClientSpec {
  name: string;
  /** 203.0.113.0/24 puts the client behind the router; 198.51.100.0/24 puts it on the LAN. */
  ip: string;
  /** IPv6 address on the same segment: 2001:db8:203::/64 behind the router, 2001:db8:100::/64 on the LAN. */
  ip6?: string;
}

export interface TopologySpec {
  lbs?: LbHostSpec[];
  /** Plain LAN hosts (for example one that runs the Kubernetes API simulator); same fields as an LB host. */
  hosts?: LbHostSpec[];
  nodes?: NodeSpec[];
  clients?: ClientSpec[];
}

export const LAN = '198.51.100.0/24';
export const WAN = '203.0.113.0/24';
export const VIP_RANGE = '192.0.2.0/24';
export const LAN6 = '2001:db8:100::/64';
export const WAN6 = '2001:db8:203::/64';
export const VIP6_RANGE = '2001:db8:ff::/64';
export const ROUTER = { name: 'router', lanIp: '198.51.100.1', wanIp: '203.0.113.1', lanIp6: '2001:db8:100::1', wanIp6: '2001:db8:203::1' } as const;
/** The namespace that holds the bridges br-lan and br-wan. */
export const SWITCH_NS = 'lab-sw';

const NAME_RE = /^[a-z][a-z0-9-]{0,12}$/;
const MODES: readonly VipMode[] = ['dnat', 'dnat-nft', 'kube-ipvs0', 'tunl0', 'lo', 'none'];

/** Checks an address against the allowed ranges and returns it in canonical form. */
function inRange(field: string, value: string, cidrs: readonly string[]): string {
  const v4 = ipaddr.IPv4.isValidFourPartDecimal(value);
  if (!v4 && !(typeof value === 'string' && value.includes(':') && !value.includes('%') && ipaddr.IPv6.isValid(value))) {
    throw new Error(`topology ${field}: ${JSON.stringify(value)} is not an IP address`);
  }
  const addr = ipaddr.parse(value);
  if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) {
    throw new Error(`topology ${field}: ${value} is an IPv4-mapped address`);
  }
  const ok = cidrs.some((c) => {
    const [net, bits] = ipaddr.parseCIDR(c);
    return addr.kind() === net.kind() && addr.match(net, bits);
  });
  if (!ok) throw new Error(`topology ${field}: ${value} is outside ${cidrs.join(' and ')}`);
  if (v4) {
    const last = Number(value.split('.')[3]);
    if (last === 0 || last === 255) throw new Error(`topology ${field}: ${value} is a network or broadcast address`);
  } else if ((addr as ipaddr.IPv6).parts.slice(4).every((p) => p === 0)) {
    throw new Error(`topology ${field}: ${value} is the subnet-router anycast address`);
  }
  return addr.toString();
}

const isV6 = (a: string): boolean => a.includes(':');

function ports(field: string, list: readonly number[] | undefined): number[] {
  for (const p of list ?? []) {
    if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`topology ${field}: ${JSON.stringify(p)} is not a TCP port`);
  }
  return [...(list ?? [])];
}

type CheckedHost = Required<Omit<LbHostSpec, 'ip6'>> & { ip6?: string };
type CheckedNode = Required<Omit<NodeSpec, 'ip6'>> & { ip6?: string };

interface Checked {
  lbs: CheckedHost[];
  hosts: CheckedHost[];
  nodes: CheckedNode[];
  clients: (ClientSpec & { wan: boolean })[];
  router: boolean;
  v6: boolean;
}

/** Validates the whole spec before anything is built; every error names the field and the value. */
export function checkTopology(spec: TopologySpec, backend?: 'uml' | 'qemu'): Checked {
  const names = new Set<string>([SWITCH_NS, ROUTER.name]);
  const ips = new Set<string>([ROUTER.lanIp, ROUTER.wanIp, ROUTER.lanIp6, ROUTER.wanIp6]);
  const claim = (field: string, name: string, ip: string, ip6?: string): void => {
    if (!NAME_RE.test(name)) throw new Error(`topology ${field}.name: ${JSON.stringify(name)} must match ${NAME_RE.source} (it names a namespace and a veth)`);
    if (names.has(name)) throw new Error(`topology ${field}.name: ${JSON.stringify(name)} is reserved or used twice`);
    names.add(name);
    for (const [k, a] of [['ip', ip], ['ip6', ip6]] as const) {
      if (a === undefined) continue;
      if (ips.has(a)) throw new Error(`topology ${field}.${k}: ${a} is the router's or used twice`);
      ips.add(a);
    }
  };
  const vips = (field: string, list: readonly string[] | undefined): string[] =>
    (list ?? []).map((v, i) => inRange(`${field}.vips[${i}]`, v, [VIP_RANGE, VIP6_RANGE]));
  const host = (kind: 'lbs' | 'hosts') => (l: LbHostSpec, i: number): CheckedHost => {
    const f = `${kind}[${i}]`;
    const ip = inRange(`${f}.ip`, l.ip, [LAN]);
    const ip6 = l.ip6 === undefined ? undefined : inRange(`${f}.ip6`, l.ip6, [LAN6]);
    claim(f, l.name, ip, ip6);
    const v = vips(f, l.vips);
    if (!ip6 && v.some(isV6)) throw new Error(`topology ${f}.vips: IPv6 VIPs need ${f}.ip6`);
    return { name: l.name, ip, ip6, vips: v };
  };
  const lbs = (spec.lbs ?? []).map(host('lbs'));
  const hosts = (spec.hosts ?? []).map(host('hosts'));
  const nodes = (spec.nodes ?? []).map((n, i): CheckedNode => {
    const f = `nodes[${i}]`;
    const ip = inRange(`${f}.ip`, n.ip, [LAN]);
    const ip6 = n.ip6 === undefined ? undefined : inRange(`${f}.ip6`, n.ip6, [LAN6]);
    claim(f, n.name, ip, ip6);
    const vipMode = n.vipMode ?? 'kube-ipvs0';
    if (!MODES.includes(vipMode)) throw new Error(`topology ${f}.vipMode: ${JSON.stringify(vipMode)} is not one of ${MODES.join(', ')}`);
    if (vipMode === 'dnat-nft' && backend === 'uml') {
      throw new Error(`topology ${f}.vipMode: dnat-nft needs the QEMU backend (Debian's UML kernel has no nft nat chain); use dnat (iptables) or backend 'qemu'`);
    }
    const http = ports(`${f}.http`, n.http ?? [80]);
    const echo = ports(`${f}.echo`, n.echo);
    const healthz = ports(`${f}.healthz`, n.healthz);
    const dup = [...http, ...echo, ...healthz].find((p, k, all) => all.indexOf(p) !== k);
    if (dup !== undefined) throw new Error(`topology ${f}: port ${dup} is used by two servers`);
    const v = vips(f, n.vips);
    if (!ip6 && v.some(isV6)) throw new Error(`topology ${f}.vips: IPv6 VIPs need ${f}.ip6`);
    if (vipMode === 'tunl0' && v.some(isV6)) throw new Error(`topology ${f}.vips: vipMode tunl0 takes IPv4 VIPs only`);
    return { name: n.name, ip, ip6, vipMode, vips: v, http, echo, healthz };
  });
  const clients = (spec.clients ?? []).map((c, i) => {
    const f = `clients[${i}]`;
    const ip = inRange(`${f}.ip`, c.ip, [LAN, WAN]);
    const wan = ip.startsWith('203.0.113.');
    const ip6 = c.ip6 === undefined ? undefined : inRange(`${f}.ip6`, c.ip6, [wan ? WAN6 : LAN6]);
    claim(f, c.name, ip, ip6);
    return { name: c.name, ip, ip6, wan };
  });
  const v6 = [...lbs, ...hosts, ...nodes, ...clients].some((x) => x.ip6 !== undefined);
  return { lbs, hosts, nodes, clients, router: clients.some((c) => c.wan), v6 };
}

/** The HTTP responder socat runs per connection (dash, builtins only: one process per request). */
export function httpResponderScript(): string {
  return `#!/bin/sh
# Reads the request head, answers one line: who served it and the addresses the node's socket saw.
while read -r l && [ \${#l} -gt 1 ]; do :; done
body="node=$LAB_NODE client=$SOCAT_PEERADDR clientport=$SOCAT_PEERPORT local=$SOCAT_SOCKADDR localport=$SOCAT_SOCKPORT
"
printf 'HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\nContent-Length: %d\\r\\nConnection: close\\r\\n\\r\\n%s' "\${#body}" "$body"
`;
}

/** The health responder (dash, builtins only): the status code comes from a file per node and port. */
export function healthzResponderScript(runDir: string): string {
  return `#!/bin/sh
# Answers like kube-proxy's health servers: 200 with a small JSON body, or whatever code the file holds.
while read -r l && [ \${#l} -gt 1 ]; do :; done
code=200
f=${shq(`${runDir}/topo/healthz`)}/"$LAB_NODE-$SOCAT_SOCKPORT"
[ -r "$f" ] && read -r code < "$f"
case "$code" in 200) text=OK ;; 503) text='Service Unavailable' ;; *) text=Status ;; esac
body="{\\"node\\":\\"$LAB_NODE\\",\\"port\\":$SOCAT_SOCKPORT,\\"code\\":$code}"
printf 'HTTP/1.0 %s %s\\r\\nContent-Type: application/json\\r\\nContent-Length: %d\\r\\nConnection: close\\r\\n\\r\\n%s' "$code" "$text" "\${#body}" "$body"
`;
}

/** The file whose content is the status code a node's health server on `port` answers with. */
export const healthzFile = (runDir: string, node: string, port: number): string => `${runDir}/topo/healthz/${node}-${port}`;

/** Makes node's health server on `port` answer with `code` from its next request on (200, 503, ...). */
export async function setHealthz(vm: Vm, node: string, port: number, code: number): Promise<void> {
  if (!Number.isInteger(code) || code < 100 || code > 599) throw new Error(`setHealthz code: ${JSON.stringify(code)} is not an HTTP status`);
  await vm.writeFile(healthzFile(vm.runDir, node, port), `${code}\n`);
}

/** The command line of a node's server (the topology starts it; restartServer starts it again). */
export function serverArgv(runDir: string, s: Pick<ServerInfo, 'kind' | 'port' | 'family'>): string[] {
  const listen = s.family === 6 ? 'TCP6-LISTEN' : 'TCP4-LISTEN';
  const opt = s.family === 6 ? ',ipv6only=1' : '';
  const topo = `${runDir}/topo`;
  const target = s.kind === 'http' ? `EXEC:/bin/sh ${topo}/http-responder.sh` : s.kind === 'healthz' ? `EXEC:/bin/sh ${topo}/healthz-responder.sh` : 'PIPE';
  return ['socat', `${listen}:${s.port},fork,reuseaddr${opt}`, target];
}

/**
 * Starts a node's server again after a test stopped it: `name` is the topology's (KIND-NODE-PORT or
 * KIND6-NODE-PORT), `as` the new process name (names are unique per VM). Returns once it listens.
 */
export async function restartServer(vm: Vm, name: string, as: string): Promise<GuestProcess> {
  const m = /^(http|echo|healthz)(6?)-([a-z][a-z0-9-]*)-(\d+)$/.exec(name);
  if (!m) throw new Error(`restartServer name: ${JSON.stringify(name)} is not KIND-NODE-PORT`);
  const info: ServerInfo = { name, ns: m[3]!, kind: m[1] as ServerInfo['kind'], port: Number(m[4]), family: m[2] ? 6 : 4 };
  const p = await vm.spawn(as, serverArgv(vm.runDir, info), { ns: info.ns, env: { LAB_NODE: info.ns } });
  await vm.run(`${portsWaitFn}lab_wait_listen ${info.family === 6 ? '6:' : ''}${info.port}`, { ns: info.ns });
  return p;
}

export interface Whoami {
  node: string;
  client: string;
  clientPort: number;
  local: string;
  localPort: number;
}

/** Parses the HTTP servers' answer body. */
export function parseWhoami(body: string): Whoami {
  const kv = new Map(body.trim().split(/\s+/).map((p) => p.split('=', 2) as [string, string]));
  const need = (k: string): string => {
    const v = kv.get(k);
    if (v === undefined) throw new Error(`not a lab HTTP answer (no ${k}=): ${JSON.stringify(body)}`);
    return v;
  };
  // socat writes IPv6 addresses in brackets and in full; give them in the usual short form.
  const ip = (v: string): string => {
    const bare = v.replace(/^\[(.*)\]$/, '$1');
    return ipaddr.isValid(bare) ? ipaddr.parse(bare).toString() : bare;
  };
  return { node: need('node'), client: ip(need('client')), clientPort: Number(need('clientport')), local: ip(need('local')), localPort: Number(need('localport')) };
}

export interface ServerInfo {
  /** Background process name: KIND-NODE-PORT (IPv4) or KIND6-NODE-PORT (IPv6), KIND one of http, echo, healthz. */
  name: string;
  ns: string;
  kind: 'http' | 'echo' | 'healthz';
  port: number;
  family: 4 | 6;
}

export interface TopologyPlan {
  /** The bash script to run in the guest's root namespace. */
  script: string;
  /** Per-namespace scripts the main script runs (file name relative to RUN/topo/ → text). */
  files: Map<string, string>;
  servers: ServerInfo[];
}

const portsWaitFn = `# Waits (builtins only) until every given TCP port (N for IPv4, 6:N for IPv6) listens in this namespace.
lab_wait_listen() {
  local p want got st loc tab tries=0
  for p in "$@"; do
    tab=/proc/net/tcp
    case "$p" in 6:*) tab=/proc/net/tcp6; p=\${p#6:} ;; esac
    printf -v want '%04X' "$p"
    while :; do
      got=
      while read -r _ loc _ st _; do
        [ "$st" = 0A ] && [ "\${loc##*:}" = "$want" ] && { got=1; break; }
      done < "$tab"
      [ -n "$got" ] && break
      tries=$((tries+1)); [ $tries -gt 400 ] && { echo "port $p does not listen" >&2; return 1; }
      sleep 0.02
    done
  done
}
`;

/** Builds the guest script for a topology. runDir is the VM's shared run directory. */
export function planTopology(spec: TopologySpec, runDir: string, backend?: 'uml' | 'qemu'): TopologyPlan {
  const t = checkTopology(spec, backend);
  const topo = `${runDir}/topo`;
  const files = new Map<string, string>();
  const servers: ServerInfo[] = [];
  const all = [
    ...t.lbs.map((x) => ({ name: x.name, seg: 'lan' })),
    ...t.hosts.map((x) => ({ name: x.name, seg: 'lan' })),
    ...t.nodes.map((x) => ({ name: x.name, seg: 'lan' })),
    ...t.clients.map((x) => ({ name: x.name, seg: x.wan ? 'wan' : 'lan' })),
  ];
  const lanGw = (x: { ip6?: string }): string[] =>
    t.router ? [`route add default via ${ROUTER.lanIp}`, ...(x.ip6 ? [`route add default via ${ROUTER.lanIp6}`] : [])] : [];
  // nodad: a lab address is unique by construction, and duplicate address detection would keep it
  // tentative (unusable) for a second, or fail it when a VIP is also held elsewhere on purpose (DR).
  const addr = (a: string, dev: string, lanPrefix = true): string =>
    isV6(a) ? `addr add ${a}/${lanPrefix ? 64 : 128} dev ${dev} nodad` : `addr add ${a}/${lanPrefix ? 24 : 32} dev ${dev}`;
  const own = (x: { ip: string; ip6?: string }): string[] => [addr(x.ip, 'eth0'), ...(x.ip6 ? [addr(x.ip6, 'eth0')] : [])];

  const root: string[] = [`netns add ${SWITCH_NS}`, ...all.map((n) => `netns add ${n.name}`)];
  if (t.router) root.push(`netns add ${ROUTER.name}`);
  root.push(`link add br-lan netns ${SWITCH_NS} type bridge`);
  if (t.router) root.push(`link add br-wan netns ${SWITCH_NS} type bridge`);
  for (const n of all) root.push(`link add eth0 netns ${n.name} type veth peer name v-${n.name} netns ${SWITCH_NS}`);
  if (t.router) {
    root.push(`link add eth0 netns ${ROUTER.name} type veth peer name v-router-lan netns ${SWITCH_NS}`);
    root.push(`link add eth1 netns ${ROUTER.name} type veth peer name v-router-wan netns ${SWITCH_NS}`);
  }
  const sw = ['link set lo up', 'link set br-lan up', ...all.filter((n) => n.seg === 'lan').map((n) => `link set v-${n.name} master br-lan up`)];
  if (t.router) {
    sw.push('link set br-wan up', 'link set v-router-lan master br-lan up', 'link set v-router-wan master br-wan up');
    sw.push(...all.filter((n) => n.seg === 'wan').map((n) => `link set v-${n.name} master br-wan up`));
  }

  const lines: string[] = [
    '#!/bin/bash',
    '# lab topology (generated by lab/vm/topology.ts)',
    'set -euo pipefail',
  ];
  const modules = ['veth', 'bridge'];
  if (t.nodes.some((n) => n.vipMode === 'kube-ipvs0')) modules.push('dummy');
  if (t.nodes.some((n) => n.vipMode === 'tunl0')) modules.push('ipip');
  if (t.nodes.some((n) => n.vipMode === 'dnat')) modules.push('iptable_nat', 'xt_nat', 'xt_tcpudp');
  if (t.nodes.some((n) => n.vipMode === 'dnat' && n.vips.some(isV6))) modules.push('ip6table_nat');
  if (t.nodes.some((n) => n.vipMode === 'dnat-nft')) modules.push('nf_tables'); // nft autoloads the nat chain and expressions
  lines.push(`modprobe -a ${modules.join(' ')}`);
  lines.push(`ip -batch - <<'LAB_EOF'\n${root.join('\n')}\nLAB_EOF`);
  lines.push(`ip -n ${SWITCH_NS} -batch - <<'LAB_EOF'\n${sw.join('\n')}\nLAB_EOF`);

  // Namespaces that need nothing but addresses and routes get one `ip -batch` each.
  const plain = (name: string, cmds: string[]): void => {
    lines.push(`ip -n ${name} -batch - <<'LAB_EOF'\n${['link set lo up', 'link set eth0 up', ...cmds].join('\n')}\nLAB_EOF`);
  };
  for (const l of [...t.lbs, ...t.hosts]) {
    plain(l.name, [...own(l), ...l.vips.map((v) => addr(v, 'eth0', false)), ...lanGw(l)]);
  }
  for (const c of t.clients) {
    plain(c.name, c.wan
      ? [...own(c), `route add default via ${ROUTER.wanIp}`, ...(c.ip6 ? [`route add default via ${ROUTER.wanIp6}`] : [])]
      : [...own(c), `route add ${VIP_RANGE} dev eth0`, ...(c.ip6 ? [`route add ${VIP6_RANGE} dev eth0`] : []), ...lanGw(c)]);
  }

  // The router and the nodes need sysctls, rules or servers: one bash inside the namespace each.
  const inNs = (name: string, body: string): void => {
    files.set(`${name}.sh`, `#!/bin/bash\nset -euo pipefail\n${body}`);
    lines.push(`ip netns exec ${name} bash ${shq(`${topo}/${name}.sh`)}`);
  };
  if (t.router) {
    inNs(ROUTER.name, `ip -batch - <<'LAB_EOF'
link set lo up
link set eth0 up
link set eth1 up
addr add ${ROUTER.lanIp}/24 dev eth0
addr add ${ROUTER.wanIp}/24 dev eth1
route add ${VIP_RANGE} dev eth0
${t.v6 ? `${addr(ROUTER.lanIp6, 'eth0')}\n${addr(ROUTER.wanIp6, 'eth1')}\nroute add ${VIP6_RANGE} dev eth0\n` : ''}LAB_EOF
echo 1 > /proc/sys/net/ipv4/ip_forward
${t.v6 ? 'echo 1 > /proc/sys/net/ipv6/conf/all/forwarding\n' : ''}`);
  }
  for (const n of t.nodes) {
    const ipCmds = ['link set lo up', 'link set eth0 up', ...own(n), ...lanGw(n)];
    const v4vips = n.vips.filter((v) => !isV6(v));
    const v6vips = n.vips.filter(isV6);
    const ports = [...n.http, ...n.echo, ...n.healthz];
    const sys: string[] = [];
    let nft = '';
    switch (n.vipMode) {
      case 'kube-ipvs0':
        // kube-proxy creates kube-ipvs0 and never sets it up: the addresses are local all the same.
        ipCmds.push('link add kube-ipvs0 type dummy', ...n.vips.map((v) => addr(v, 'kube-ipvs0', false)));
        sys.push('all/arp_ignore=1', 'all/arp_announce=2');
        break;
      case 'lo':
        ipCmds.push(...n.vips.map((v) => addr(v, 'lo', false)));
        sys.push('all/arp_ignore=1', 'all/arp_announce=2');
        break;
      case 'tunl0':
        ipCmds.push('link set tunl0 up', ...n.vips.map((v) => addr(v, 'tunl0', false)));
        sys.push('all/arp_ignore=1', 'all/arp_announce=2', 'all/rp_filter=0', 'default/rp_filter=0', 'tunl0/rp_filter=0', 'eth0/rp_filter=0');
        break;
      case 'dnat': {
        const restore = (cmd: string, vips: string[], bits: number, to: string): string => vips.length === 0 ? '' : `${cmd} <<'LAB_EOF'
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
${vips.flatMap((v) => ports.map((p) => `-A PREROUTING -d ${v}/${bits} -p tcp -m tcp --dport ${p} -j DNAT --to-destination ${to}:${p}`)).join('\n')}
COMMIT
LAB_EOF
`;
        nft = restore('iptables-legacy-restore', v4vips, 32, n.ip) + restore('ip6tables-legacy-restore', v6vips, 128, `[${n.ip6 ?? ''}]`);
        break;
      }
      case 'dnat-nft': {
        const table = (fam: 'ip' | 'ip6', vips: string[], to: string): string => vips.length === 0 ? '' : `table ${fam} kube-proxy {
  chain nat-prerouting {
    type nat hook prerouting priority dstnat; policy accept;
${vips.flatMap((v) => ports.map((p) => `    ${fam} daddr ${v} tcp dport ${p} dnat to ${to}:${p}`)).join('\n')}
  }
}
`;
        nft = `nft -f - <<'LAB_EOF'
${table('ip', v4vips, n.ip)}${table('ip6', v6vips, `[${n.ip6 ?? ''}]`)}LAB_EOF
`;
        break;
      }
      case 'none':
        break;
    }
    const sysLines = sys.map((s) => {
      const [k, v] = s.split('=') as [string, string];
      return `echo ${v} > /proc/sys/net/ipv4/conf/${k}`;
    });
    const launches: string[] = [];
    // One socat per port and family (a dual-stack socket would report IPv4 clients as ::ffff:a.b.c.d).
    const families: Array<['' | '6', string]> = [['', 'TCP4-LISTEN'], ...(n.ip6 ? [['6', 'TCP6-LISTEN'] as ['6', string]] : [])];
    for (const [fam] of families) {
      for (const [kind, list] of [['http', n.http], ['echo', n.echo], ['healthz', n.healthz]] as const) {
        for (const p of list) {
          const name = `${kind}${fam}-${n.name}-${p}`;
          const info: ServerInfo = { name, ns: n.name, kind, port: p, family: fam ? 6 : 4 };
          servers.push(info);
          launches.push(backgroundLaunch({ runDir, name, logPath: `${runDir}/artifacts/logs/${name}.log`, argv: serverArgv(runDir, info) }));
        }
      }
    }
    const listen = [...ports.map(String), ...(n.ip6 ? ports.map((p) => `6:${p}`) : [])];
    inNs(n.name, `ip -batch - <<'LAB_EOF'
${ipCmds.join('\n')}
LAB_EOF
${sysLines.join('\n')}
${nft}export LAB_NODE=${shq(n.name)}
${launches.join('')}${portsWaitFn}${listen.length ? `lab_wait_listen ${listen.join(' ')}\n` : ''}`);
  }
  if (t.nodes.some((n) => n.http.length > 0)) files.set('http-responder.sh', httpResponderScript());
  if (t.nodes.some((n) => n.healthz.length > 0)) files.set('healthz-responder.sh', healthzResponderScript(runDir));
  lines.push('echo topology-ready');
  return { script: `${lines.join('\n')}\n`, files, servers };
}

export interface Topology {
  spec: TopologySpec;
  /** The servers started on the nodes, by process name (http-NODE-PORT, echo-NODE-PORT). */
  servers: Map<string, GuestProcess>;
  /** Wall time the guest took to build it. */
  durationMs: number;
}

/** Builds the topology inside a running VM. Throws (naming the field) before touching the guest if the spec
 * is wrong, and with the guest's stderr if a step fails there. */
export async function applyTopology(vm: Vm, spec: TopologySpec): Promise<Topology> {
  const plan = planTopology(spec, vm.runDir, vm.backend);
  mkdirSync(`${vm.runDir}/topo/healthz`, { recursive: true });
  for (const [file, text] of plan.files) await vm.writeFile(`${vm.runDir}/topo/${file}`, text, '0755');
  const r = await vm.run(plan.script, { timeoutMs: 120_000 });
  const servers = new Map<string, GuestProcess>();
  for (const s of plan.servers) servers.set(s.name, vm.adopt(s.name, s.ns));
  return { spec, servers, durationMs: r.durationMs };
}

/** curl from a namespace, returning the body; throws with curl's error if the request fails. */
export async function curl(vm: Vm, ns: string, url: string, opts: { timeoutS?: number; extra?: string[] } = {}): Promise<string> {
  const r = await vm.run(['curl', '-sS', '--max-time', String(opts.timeoutS ?? 5), ...(opts.extra ?? []), url], { ns, timeoutMs: ((opts.timeoutS ?? 5) + 10) * 1000 });
  return r.stdout;
}

/** Several HTTP requests from one namespace in a single curl process (a new connection each, since the lab
 * servers close after one answer), returning each body, or `curl-failed code=N exit=M` for a failed one.
 * Much cheaper than one exec per request under emulation. */
export async function curlMany(vm: Vm, ns: string, url: string, count: number, timeoutS = 5): Promise<string[]> {
  if (!Number.isInteger(count) || count < 1 || count > 1000) throw new Error(`curlMany count: ${count} must be 1..1000`);
  const sep = '@@LAB-SEP@@';
  const argv = ['curl', '-sS', '--max-time', String(timeoutS), '-w', `\n${sep} %{http_code} %{exitcode}\n`, ...Array<string>(count).fill(url)];
  const r = await vm.exec(argv, { ns, timeoutMs: (count * timeoutS + 10) * 1000 });
  const out: string[] = [];
  const re = new RegExp(`([\\s\\S]*?)\\n${sep} (\\d+) (\\d+)\\n`, 'g');
  for (const m of r.stdout.matchAll(re)) {
    out.push(m[2] === '200' ? (m[1] ?? '').trim() : `curl-failed code=${m[2]} exit=${m[3]}`);
  }
  if (out.length !== count) throw new Error(`curlMany: ${out.length} of ${count} answers parsed (curl exit ${r.code}): ${r.stderr}`);
  return out;
}
