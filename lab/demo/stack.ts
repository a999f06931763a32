// The whole ipvs-lb installation in one lab guest, as the demo and the end-to-end tests use it: a Kubernetes
// API host running the simulator (`ipvs-lb lab`) with the sample three-node cluster, one or two LB hosts each
// running the real `ipvs-lb daemon` (with its keepalived when VRRP is on), three nodes whose lab HTTP servers
// stand in for pods, and a client behind the router. Everything the daemon touches is real: IPVS, rtnetlink,
// keepalived, the SQLite ledger, HTTP over the guest's network; only the API server is simulated.
//
//   const lab = await LbLab.start({ lbHosts: 2, vrrp: true, pools: [...] });   // boots, builds, starts daemons
//   await lab.apply('whoami', yaml);  await lab.waitFor(...);  await lab.syncKubeProxy();
//   await lab.stop();                                                             // the lab removes everything
//
// Addresses (documentation ranges only): LAN 198.51.100.0/24 with the router .1, lb1 .2, lb2 .3, the API host
// .5 and node-1..3 .11-.13 (the simulator's sample nodes); the client 203.0.113.10 behind the router.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ipaddr from 'ipaddr.js';
import { stringify } from 'yaml';
import { repoRoot } from '../vm/paths.js';
import { applyTopology, startVm, type ExecResult, type GuestProcess, type Topology, type Vm } from '../vm/index.js';
import { applyScript, planKubeProxy, type EndpointSliceLike, type LabNode, type ServiceLike } from './kube-proxy.js';

/** The checkout this module was built from; the guest sees it at the same path. */
export const ROOT = repoRoot;
export const KUBECTL = join(ROOT, '.cache', 'kubernetes-client', 'usr', 'bin', 'kubectl');

export interface LbHost {
  name: 'lb1' | 'lb2';
  ip: string;
  /** VRRP priority of group a: lb1 is the preferred master. */
  priority: number;
}

export const LB_HOSTS: readonly LbHost[] = [
  { name: 'lb1', ip: '198.51.100.2', priority: 150 },
  { name: 'lb2', ip: '198.51.100.3', priority: 100 },
];
export const API_HOST = { name: 'k8s', ip: '198.51.100.5' } as const;
export const NODES: readonly LabNode[] = [
  { name: 'node-1', ip: '198.51.100.11' },
  { name: 'node-2', ip: '198.51.100.12' },
  { name: 'node-3', ip: '198.51.100.13' },
];
export const CLIENT = { name: 'client', ip: '203.0.113.10' } as const;
export const ROUTER_WAN_IP = '203.0.113.1';

const KUBE_DIR = '/tmp/kube';
export const KUBECONFIG = `${KUBE_DIR}/kubeconfig`;
const API_PORT = 6443;

export interface LabOptions {
  /** LB hosts: lb1, or lb1 and lb2. */
  lbHosts: 1 | 2;
  /** VRRP with keepalived (group a, virtual router 51, lb1 priority 150, lb2 100, unicast). */
  vrrp: boolean;
  /** The daemons' `pools` (config YAML). */
  pools: unknown[];
  /** The daemons' default scheduler. Default: the product default (mh). */
  scheduler?: string;
  /** TCP ports of every node's HTTP server. Default [80]. */
  httpPorts?: number[];
  /** VRRP advert interval (vrrp.groups[].advertIntervalSeconds). Default: the product default (0.1 s). */
  advertIntervalSeconds?: number;
  /** The daemons' log level (their logs are in the artifacts). Default info. */
  logLevel?: 'info' | 'debug';
  /** Default: IPVS_LB_LAB_BACKEND, else User-Mode Linux. */
  backend?: 'uml' | 'qemu';
  /** Guest RAM; two daemons, the simulator and kubectl want more than the lab's default. Default 1024. */
  memoryMb?: number;
}

export interface DaemonPaths {
  config: string;
  stateDir: string;
  keepalivedConf: string;
}

export function daemonPaths(lb: string): DaemonPaths {
  return { config: `/etc/ipvs-lb/${lb}.yaml`, stateDir: `/var/lib/ipvs-lb/${lb}`, keepalivedConf: `/run/ipvs-lb/${lb}/keepalived.conf` };
}

/** The daemon configuration of one LB host (what /etc/ipvs-lb/config.yaml would hold there). */
export function daemonConfig(lb: LbHost, o: LabOptions): Record<string, unknown> {
  const p = daemonPaths(lb.name);
  const peers = LB_HOSTS.slice(0, o.lbHosts).filter((h) => h.name !== lb.name).map((h) => h.ip);
  return {
    hostName: lb.name,
    interface: 'eth0',
    stateDir: p.stateDir,
    kubernetes: {
      kubeconfig: KUBECONFIG,
      // Short Lease terms so the surviving host takes the allocator role within seconds of the other's death.
      lease: { durationSeconds: 8, renewDeadlineSeconds: 6, retryPeriodSeconds: 2 },
    },
    pools: o.pools,
    ...(o.scheduler ? { scheduler: o.scheduler } : {}),
    vrrp: o.vrrp
      ? { enabled: true, configPath: p.keepalivedConf, garpRepeat: 3, garpIntervalMs: 100, groups: [{ name: 'a', virtualRouterId: 51, priority: lb.priority, peers, unicastSourceIp: lb.ip, ...(o.advertIntervalSeconds ? { advertIntervalSeconds: o.advertIntervalSeconds } : {}) }] }
      : { enabled: false, garpRepeat: 1 },
    reconcile: { coalesceMs: 20 },
    // As the ansible role leaves a real LB host (expire_nodest_conn, arp_ignore, arp_announce ...): otherwise
    // /readyz carries the sysctl warnings and the soak counts them as unreported problems.
    sysctl: { manage: true },
    // The lab's nodes run no kube-proxy health port; backend health checks have tests of their own.
    healthCheck: { enabled: false },
    ...(o.logLevel ? { logging: { level: o.logLevel } } : {}),
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class LbLab {
  readonly lbs: readonly LbHost[];
  readonly token = randomBytes(16).toString('hex');
  private readonly daemons = new Map<string, GuestProcess>();
  /** Every daemon process started, running or not (their logs explain a failure). */
  readonly daemonHistory: GuestProcess[] = [];
  private readonly apiTokens = new Map<string, string>();
  private spawned = 0;

  private constructor(readonly vm: Vm, readonly options: LabOptions) {
    this.lbs = LB_HOSTS.slice(0, options.lbHosts);
  }

  /** Boots the guest only; buildNetwork(), startApiServer() and startDaemon() do the rest. */
  static async boot(o: LabOptions): Promise<LbLab> {
    const vm = await startVm({ ...(o.backend ? { backend: o.backend } : {}), memoryMb: o.memoryMb ?? 1024 });
    return new LbLab(vm, o);
  }

  /** Everything up to running daemons (lb1 first, so that it is the VRRP master); stops the VM on failure. */
  static async start(o: LabOptions): Promise<LbLab> {
    const lab = await LbLab.boot(o);
    try {
      await lab.buildNetwork();
      await lab.startApiServer();
      for (const lb of lab.lbs) {
        await lab.startDaemon(lb.name);
        if (o.vrrp && lb.name === 'lb1') await lab.waitFor('lb1 to become VRRP master', async () => ((await lab.vrrpState('lb1')) === 'MASTER' ? true : undefined));
      }
      return lab;
    } catch (err) {
      await lab.stop();
      throw err;
    }
  }

  lb(name: string): LbHost {
    const h = this.lbs.find((l) => l.name === name);
    if (!h) throw new Error(`lab: no LB host ${JSON.stringify(name)} (have ${this.lbs.map((l) => l.name).join(', ')})`);
    return h;
  }

  async buildNetwork(): Promise<Topology> {
    const t = await applyTopology(this.vm, {
      lbs: this.lbs.map((l) => ({ name: l.name, ip: l.ip })),
      hosts: [{ name: API_HOST.name, ip: API_HOST.ip }],
      // The VIPs reach kube-ipvs0 later, when a Service gets one (syncKubeProxy, as kube-proxy would).
      nodes: NODES.map((n) => ({ name: n.name, ip: n.ip, vipMode: 'kube-ipvs0' as const, vips: [], http: this.options.httpPorts ?? [80] })),
      clients: [{ name: CLIENT.name, ip: CLIENT.ip }],
    });
    await this.vm.run('modprobe -a ip_vs ip_vs_rr ip_vs_mh');
    return t;
  }

  /**
   * `ipvs-lb lab` on the API host. It listens on loopback only (its certificate names 127.0.0.1), so a TCP
   * relay on the API host's LAN address and one on each LB host's loopback carry the LB hosts' connections,
   * like a local API proxy: every client uses the same kubeconfig (https://127.0.0.1:6443).
   */
  async startApiServer(): Promise<void> {
    const sim = await this.vm.spawn('kube-sim', ['node', join(ROOT, 'bin', 'ipvs-lb.js'), 'lab', '--port', String(API_PORT), '--dir', KUBE_DIR, '--token', this.token], { ns: API_HOST.name });
    await this.waitFor('the API simulator to listen', async () => (sim.log().includes('listening on') ? true : undefined), 60_000, () => sim.log());
    await this.vm.spawn('api-relay', ['socat', `TCP4-LISTEN:${API_PORT},bind=${API_HOST.ip},fork,reuseaddr`, `TCP4:127.0.0.1:${API_PORT}`], { ns: API_HOST.name });
    for (const lb of this.lbs) {
      await this.vm.spawn(`api-relay-${lb.name}`, ['socat', `TCP4-LISTEN:${API_PORT},bind=127.0.0.1,fork,reuseaddr`, `TCP4:${API_HOST.ip}:${API_PORT}`], { ns: lb.name });
      await this.waitFor(`the API to answer on ${lb.name}`, async () => {
        const r = await this.vm.exec(['curl', '-sk', '--max-time', '3', `https://127.0.0.1:${API_PORT}/healthz`], { ns: lb.name });
        return r.stdout.trim() === 'ok' ? true : undefined;
      });
    }
    // The allocator Lease lives in the ipvs-lb namespace (deploy/ creates it in a real cluster).
    await this.kubectl(['create', 'namespace', 'ipvs-lb']);
  }

  /** Writes the LB host's config and starts `ipvs-lb daemon` there; resolves once /readyz says ready.
   * `root` runs another build of ipvs-lb (an unpacked release, see installBuild). */
  async startDaemon(name: string, opts: { root?: string } = {}): Promise<GuestProcess> {
    if (this.daemons.has(name)) throw new Error(`lab: the daemon on ${name} is already running`);
    const p = await this.writeConfig(name);
    const proc = await this.vm.spawn(`daemon-${name}-${++this.spawned}`, ['node', join(opts.root ?? ROOT, 'bin', 'ipvs-lb.js'), 'daemon', '--config', p.config], { ns: name });
    this.daemons.set(name, proc);
    this.daemonHistory.push(proc);
    await this.waitFor(`the daemon on ${name} to be ready`, async () => {
      if (!(await this.hasToken(name))) return undefined;
      return (await this.api<{ ready?: boolean }>(name, '/readyz')).ready === true ? true : undefined;
    }, 180_000, () => proc.log().split('\n').slice(-60).join('\n'));
    if (this.options.vrrp) await this.prioritizeKeepalived(name);
    return proc;
  }

  /**
   * Gives the host's keepalived realtime priority inside the guest (what keepalived's vrrp_rt_priority does on
   * a busy LB host): every lab host shares one emulated CPU with the daemons, the simulator and kubectl, and a
   * 0.1 s advert delayed by their work makes the backup claim the master role for a moment.
   */
  private async prioritizeKeepalived(name: string): Promise<void> {
    await this.vm.run(`for p in $(ip netns pids ${name}); do
  [ "$(cat /proc/$p/comm 2>/dev/null)" = keepalived ] && chrt -f -p 20 "$p"
done
exit 0
`);
  }

  /** Writes the LB host's config file; startDaemon() does it too. */
  async writeConfig(name: string): Promise<DaemonPaths> {
    const p = daemonPaths(name);
    await this.vm.writeFile(p.config, stringify(daemonConfig(this.lb(name), this.options)));
    return p;
  }

  daemon(name: string): GuestProcess | undefined {
    return this.daemons.get(name);
  }

  /** Stops the daemon (SIGTERM: a clean stop; SIGKILL: a crash); returns its exit status. */
  async stopDaemon(name: string, signal: 'TERM' | 'KILL' = 'TERM'): Promise<number | null> {
    const d = this.daemons.get(name);
    if (!d) throw new Error(`lab: no daemon running on ${name}`);
    this.daemons.delete(name);
    const r = await d.stop({ signal, timeoutMs: 20_000 });
    return r.exitCode;
  }

  private async hasToken(name: string): Promise<boolean> {
    if (this.apiTokens.has(name)) return true;
    const r = await this.vm.exec(['cat', `${daemonPaths(name).stateDir}/api-token`]);
    if (r.code !== 0 || r.stdout.trim() === '') return false;
    this.apiTokens.set(name, r.stdout.trim());
    return true;
  }

  /** The daemon's REST API on the LB host's loopback; JSON body (also of error answers such as 503). */
  async api<T = Record<string, unknown>>(name: string, path: string, method: 'GET' | 'POST' = 'GET'): Promise<T> {
    if (!/^\/[A-Za-z0-9/_.?=&%-]*$/.test(path)) throw new Error(`lab api path: ${JSON.stringify(path)}`);
    await this.hasToken(name);
    const token = this.apiTokens.get(name);
    const r = await this.vm.run(['curl', '-sS', '--max-time', '10', '-X', method, ...(token ? ['-H', `Authorization: Bearer ${token}`] : []), `http://127.0.0.1:9742${path}`], { ns: name });
    try {
      return JSON.parse(r.stdout) as T;
    } catch {
      throw new Error(`lab api ${name} ${method} ${path}: not JSON: ${r.stdout.slice(0, 300)}`);
    }
  }

  /** The VRRP state of group a on the host ('MASTER', 'BACKUP', ...), or undefined without VRRP. */
  async vrrpState(name: string): Promise<string | undefined> {
    const r = await this.api<{ items?: Array<{ name: string; state: string }> }>(name, '/api/v1/vrrp');
    return r.items?.find((g) => g.name === 'a')?.state;
  }

  /** The ipvs-lb CLI on the LB host, with that host's config. */
  cli(name: string, args: readonly string[]): Promise<ExecResult> {
    this.lb(name);
    return this.vm.exec(['node', join(ROOT, 'bin', 'ipvs-lb.js'), '--config', daemonPaths(name).config, ...args], { ns: name, timeoutMs: 60_000 });
  }

  async ipvsadm(name: string, ...args: string[]): Promise<string> {
    this.lb(name);
    return (await this.vm.run(['ipvsadm', ...args], { ns: name })).stdout;
  }

  /** The /32 addresses on the LB host's eth0 other than its own and the VRRP marker (169.254.255.x): the VIPs. */
  async vipsOn(name: string): Promise<string[]> {
    const lb = this.lb(name);
    const out = (await this.vm.run(['ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0'], { ns: name })).stdout;
    return [...out.matchAll(/inet (\d+\.\d+\.\d+\.\d+)\/32/g)].map((m) => m[1]!).filter((a) => a !== lb.ip && !a.startsWith('169.254.')).sort();
  }

  /** kubectl on the API host. Throws with kubectl's stderr when it fails. */
  async kubectl(args: readonly string[], opts: { input?: string } = {}): Promise<string> {
    return (await this.vm.run([KUBECTL, '--kubeconfig', KUBECONFIG, ...args], { ns: API_HOST.name, timeoutMs: 60_000, ...(opts.input !== undefined ? { input: opts.input } : {}) })).stdout;
  }

  /** `kubectl apply -f` of a manifest written to /tmp/manifests/NAME.yaml in the guest. */
  async apply(name: string, yaml: string): Promise<string> {
    if (!/^[a-z0-9-]+$/.test(name)) throw new Error(`lab apply name: ${JSON.stringify(name)}`);
    const path = `/tmp/manifests/${name}.yaml`;
    await this.vm.writeFile(path, yaml);
    return this.kubectl(['apply', '-f', path]);
  }

  /** GET from the Kubernetes API with curl: much cheaper in the guest than a kubectl process, for polling. */
  async kubeGet<T = Record<string, unknown>>(path: string): Promise<T> {
    if (!/^\/(api|apis)\/[A-Za-z0-9/._=&?%-]+$/.test(path)) throw new Error(`lab kubeGet path: ${JSON.stringify(path)}`);
    const r = await this.vm.run(['curl', '-sS', '--max-time', '20', '--cacert', `${KUBE_DIR}/ca.crt`, '-H', `Authorization: Bearer ${this.token}`, `https://127.0.0.1:${API_PORT}${path}`], { ns: API_HOST.name });
    return JSON.parse(r.stdout) as T;
  }

  /** The first ingress entry of a Service's status, or undefined while it has none. */
  async ingressOf(namespace: string, name: string): Promise<{ ip: string; ipMode: string } | undefined> {
    const svc = await this.kubeGet<ServiceLike & { kind?: string; message?: string }>(`/api/v1/namespaces/${namespace}/services/${name}`);
    if (svc.kind !== 'Service') throw new Error(`lab ingressOf ${namespace}/${name}: ${svc.message ?? JSON.stringify(svc).slice(0, 200)}`);
    const first = svc.status?.loadBalancer?.ingress?.[0];
    return first?.ip ? { ip: first.ip, ipMode: first.ipMode ?? '' } : undefined;
  }

  /** Puts a Service's "pods" on nodes (the simulator has no controllers): its EndpointSlice, through the
   * simulator's admin API. */
  async placeEndpoints(namespace: string, service: string, nodes: readonly string[]): Promise<void> {
    for (const v of [namespace, service, ...nodes]) if (!/^[a-z0-9-]+$/.test(v)) throw new Error(`lab placeEndpoints: bad name ${JSON.stringify(v)}`);
    const body = JSON.stringify({ endpoints: nodes.map((node) => ({ node, ready: true })) });
    const r = await this.vm.run(['curl', '-sS', '--cacert', `${KUBE_DIR}/ca.crt`, '-H', `Authorization: Bearer ${this.token}`, '-H', 'Content-Type: application/json',
      '-X', 'PUT', '--data-binary', body, `https://127.0.0.1:${API_PORT}/kube-sim/v1/endpoints/${namespace}/${service}`], { ns: API_HOST.name });
    if (!r.stdout.includes('"ok":true')) throw new Error(`lab placeEndpoints ${namespace}/${service}: ${r.stdout}`);
  }

  /** Does on every node what kube-proxy would do for the Services' ingress IPs now (see kube-proxy.ts). */
  async syncKubeProxy(): Promise<void> {
    const services = (await this.kubeGet<{ items: ServiceLike[] }>('/api/v1/services')).items;
    const slices = (await this.kubeGet<{ items: EndpointSliceLike[] }>('/apis/discovery.k8s.io/v1/endpointslices')).items;
    const plans = planKubeProxy(services, slices, NODES);
    const dir = join(this.vm.runDir, 'kube-proxy');
    mkdirSync(dir, { recursive: true });
    for (const [node, plan] of plans) {
      writeFileSync(join(dir, `${node}.rules`), plan.rules);
      writeFileSync(join(dir, `${node}.vips`), plan.vips.map((v) => `${v}\n`).join(''));
    }
    await this.vm.run(applyScript(dir, NODES));
  }

  /**
   * Routes a VIP range of 203.0.113.0/24 (the client's own segment) to the LAN: the client sends it to the
   * router, the router finds the LB hosts on the LAN. The range must not hold the client or the router.
   */
  async routeToLan(cidr: string): Promise<void> {
    const [net, bits] = ipaddr.parseCIDR(cidr);
    const ok = net.kind() === 'ipv4' && bits >= 24 && net.match(ipaddr.parseCIDR('203.0.113.0/24'))
      && ![CLIENT.ip, ROUTER_WAN_IP].some((a) => ipaddr.parse(a).match(net, bits));
    if (!ok || ipaddr.IPv4.networkAddressFromCIDR(cidr).toString() !== net.toString()) throw new Error(`lab routeToLan: ${cidr} must be a network inside 203.0.113.0/24 without ${CLIENT.ip} and ${ROUTER_WAN_IP}`);
    await this.vm.run(['ip', 'route', 'add', cidr, 'via', ROUTER_WAN_IP], { ns: CLIENT.name });
    await this.vm.run(['ip', 'route', 'add', cidr, 'dev', 'eth0'], { ns: 'router' });
  }

  /**
   * Unpacks "another build" of ipvs-lb in the guest at dir, as a release would be (bin/, dist/src/,
   * package.json, node_modules): this checkout's build under another version string, which its API reports.
   */
  async installBuild(dir: string, version: string): Promise<void> {
    if (!/^\/[a-z0-9/._-]+$/.test(dir) || !/^[0-9A-Za-z.+-]+$/.test(version)) throw new Error(`lab installBuild: bad dir or version (${dir}, ${version})`);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Record<string, unknown>;
    await this.vm.run(['bash', '-c', 'set -e; rm -rf "$1"; mkdir -p "$1/dist"; cp -a "$2/bin" "$1/bin"; cp -a "$2/dist/src" "$1/dist/src"; ln -s "$2/node_modules" "$1/node_modules"', 'install-build', dir, ROOT]);
    await this.vm.writeFile(join(dir, 'package.json'), `${JSON.stringify({ ...pkg, version }, null, 2)}\n`);
  }

  /** Polls check() until it returns a value (errors count as "not yet"); throws after timeoutMs with what it
   * waited for, the last error, and detail() (e.g. a daemon's log) when given. */
  async waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000, detail?: () => string): Promise<T> {
    const end = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      try {
        const v = await check();
        if (v !== undefined) return v;
      } catch (err) {
        last = (err as Error).message;
      }
      if (Date.now() > end) {
        throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}${last ? `\nlast error: ${last}` : ''}${detail ? `\n--- detail ---\n${detail()}` : ''}`);
      }
      await sleep(250);
    }
  }

  /** Powers the guest off; the lab removes its directories and processes. */
  async stop(): Promise<void> {
    await this.vm.stop();
  }
}
