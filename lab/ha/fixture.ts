// Two LB hosts in the lab VM, each running the real ipvs-lb daemon, which runs the real keepalived as its
// child, in front of the sample cluster's three nodes; a Kubernetes API simulator on a host of its own; a
// client behind the router. Everything real but the API server: VRRP between the hosts, IPVS direct routing,
// the IPVS sync daemon, GARP, HTTP and echo traffic. See lab/ha/index.ts for the API.
//
// Network: the simulator listens on loopback only, so socat forwards 198.51.100.5:6443 on the kube host to
// it and 127.0.0.1:6443 on each LB host to that; the kubeconfig (https://127.0.0.1:6443) works unchanged
// on both LB hosts, and an LB host whose NIC is down loses the API as a dead host would.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { applyTopology, shq, startVm, type Backend, type ExecResult, type GuestProcess, type Vm, labTimeScale } from '../vm/index.js';
import { poll } from '../poll.js';
import { keepalivedPaths } from '../../src/vrrp/render.js';
import {
  checkHaSpec, haDaemonConfig, haService, haTopology, hostPaths, HA_CLIENT, HA_DIR, HA_HOSTS, HA_KUBE_HOST, HA_KUBE_PORT,
  kubeconfigPath, type CheckedHaSpec, type HaHostInfo, type HaLabSpec, type HostPaths,
} from './plan.js';

export const repoRoot = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');
const cli = join(repoRoot, 'bin', 'ipvs-lb.js');
const kubectlBin = join(repoRoot, '.cache', 'kubernetes-client', 'usr', 'bin', 'kubectl');
const ROUTER_LAN = '198.51.100.1';


/** lab/poll.ts's poll() with the lab's time scale; the error says what was awaited and the last state. */
export function until<T>(what: string, check: () => Promise<T | undefined>, opts: { timeoutMs?: number; everyMs?: number; describe?: () => string | Promise<string> } = {}): Promise<T> {
  return poll(what, check, { ...opts, timeoutMs: (opts.timeoutMs ?? 60_000) * labTimeScale(), prefix: 'ha lab: timed out waiting for' });
}

export interface GroupState {
  name: string;
  /** The daemon's view (src/vrrp/state.ts GroupPhase): MASTER, BACKUP, FAULT, KEEPALIVED_DOWN, ... */
  state: string;
  transitions: number;
  vips: string[];
}

/** What one LB host looks like at one moment, read in a single guest command for both hosts. */
export interface HostSnapshot {
  /** The daemon answered its API. */
  daemon: boolean;
  groups: Record<string, GroupState>;
  /** IPv4 addresses on eth0 other than the host's own (Service VIPs and VRRP marker addresses). */
  addresses: string[];
  linkUp: boolean;
  keepalivedPid: number | undefined;
  /** The IPVS sync daemons running in the host's namespace (from /proc/net/ip_vs... via ipvsadm). */
  syncDaemons: string[];
}

export type LabSnapshot = Record<'lb1' | 'lb2', HostSnapshot>;

export class HaHost {
  readonly paths: HostPaths;
  readonly keepalived: ReturnType<typeof keepalivedPaths>;
  private starts = 0;
  /** The current daemon process (undefined after a kill, until startDaemon()). */
  process: GuestProcess | undefined;
  private readonly logs: GuestProcess[] = [];
  private config: Record<string, unknown>;

  constructor(
    private readonly lab: HaLab,
    readonly info: HaHostInfo,
  ) {
    this.paths = hostPaths(info);
    this.keepalived = keepalivedPaths(this.paths.keepalivedConf);
    this.config = haDaemonConfig(lab.spec, info);
  }

  get name(): 'lb1' | 'lb2' {
    return this.info.name;
  }

  private get vm(): Vm {
    return this.lab.vm;
  }

  /** The daemon config as written to the host's config file (an object for YAML). */
  get currentConfig(): Record<string, unknown> {
    return structuredClone(this.config);
  }

  async writeConfig(config: Record<string, unknown> = this.config): Promise<void> {
    this.config = structuredClone(config);
    await this.vm.writeFile(this.paths.configFile, stringify(config));
  }

  /**
   * Starts the daemon (it starts or adopts keepalived) and waits until it is ready: its API answers and it
   * has reconciled once, which happens after its VRRP side started (pid file written, keepalived running).
   */
  async startDaemon(): Promise<void> {
    const p = await this.vm.spawn(`daemon-${this.name}-${++this.starts}`, ['node', cli, 'daemon', '--config', this.paths.configFile, '--log-level', this.lab.logLevel], { ns: this.name });
    this.process = p;
    this.logs.push(p);
    await until(`the daemon on ${this.name} to be ready`, async () => {
      const r = await this.vm.exec(['curl', '-s', '-m', '5', 'http://127.0.0.1:9742/readyz'], { ns: this.name });
      return r.code === 0 && (JSON.parse(r.stdout) as { ready?: boolean }).ready === true ? true : undefined;
    }, { timeoutMs: 120_000, everyMs: 500, describe: () => this.log().slice(-3000) });
  }

  /**
   * SIGTERM to the daemon process alone, as systemd's KillMode=mixed does: the daemon releases its VIPs,
   * stops keepalived (priority-0 advert) and exits. Whatever is left of its process group goes afterwards.
   */
  async stopDaemon(): Promise<void> {
    const p = this.process;
    this.process = undefined;
    if (!p) return;
    await this.vm.exec(`read -r pid < ${shq(this.keepalived.daemonPid)} || exit 0
kill -TERM "$pid" 2>/dev/null || exit 0
for i in $(seq 400); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.05; done
exit 1`, { timeoutMs: 40_000 });
    await p.stop({ timeoutMs: 10_000 });
  }

  /** SIGKILL of the daemon process alone: keepalived, its child, keeps running (and its tracker notices). */
  async killDaemon(): Promise<number> {
    const r = await this.vm.run(`set -e
read -r pid < ${shq(this.keepalived.daemonPid)}
kill -KILL "$pid"
while kill -0 "$pid" 2>/dev/null; do sleep 0.02; done
echo "$pid"`);
    this.process = undefined;
    return Number(r.stdout.trim());
  }

  /** The running keepalived's parent and VRRP process, from the pid files keepalived wrote. */
  async keepalivedPids(): Promise<{ main: number; vrrp: number } | undefined> {
    const r = await this.vm.exec(`read -r m < ${shq(this.keepalived.pid)} && read -r v < ${shq(this.keepalived.vrrpPid)} && kill -0 "$m" && echo "$m $v"`);
    if (r.code !== 0) return undefined;
    const [main, vrrp] = r.stdout.trim().split(' ').map(Number) as [number, number];
    return { main, vrrp };
  }

  /**
   * SIGKILL of keepalived only (the daemon sees its child exit): the parent alone (a crash; its VRRP child
   * lives on until the daemon ends it) or, with `vrrpChild`, the VRRP process too (as in a host's death).
   * Returns the pids read from keepalived's pid files.
   */
  async killKeepalived(opts: { vrrpChild?: boolean } = {}): Promise<{ main: number; vrrp: number }> {
    const r = await this.vm.run(`set -e
read -r m < ${shq(this.keepalived.pid)}
read -r v < ${shq(this.keepalived.vrrpPid)}
kill -KILL "$m" ${opts.vrrpChild ? '"$v"' : ''}
echo "$m $v"`);
    const [main, vrrp] = r.stdout.trim().split(' ').map(Number) as [number, number];
    return { main, vrrp };
  }

  /** The MAC address of the host's eth0. */
  async mac(): Promise<string> {
    const r = await this.vm.run(['ip', '-n', this.name, '-o', 'link', 'show', 'dev', 'eth0']);
    const m = /link\/ether ([0-9a-f:]{17})/.exec(r.stdout);
    if (!m) throw new Error(`ha lab: no MAC address for ${this.name} eth0 in ${JSON.stringify(r.stdout)}`);
    return m[1]!;
  }

  async linkDown(): Promise<void> {
    await this.vm.run(['ip', '-n', this.name, 'link', 'set', 'eth0', 'down']);
  }

  /** Link up again; routes through eth0 went with the link, so the default route is put back. */
  async linkUp(): Promise<void> {
    await this.vm.run(`ip -n ${this.name} link set eth0 up && ip -n ${this.name} route replace default via ${ROUTER_LAN}`);
  }

  /** GET (or POST, with the host's API token) on the daemon's API, parsed. */
  async api<T = Record<string, unknown>>(path: string, method: 'GET' | 'POST' = 'GET'): Promise<{ status: number; body: T }> {
    const auth = method === 'POST' ? `-H "Authorization: Bearer $(cat ${shq(`${this.paths.stateDir}/api-token`)})"` : '';
    const r = await this.vm.run(`curl -sS -m 60 -o /dev/stdout -w '\\n%{http_code}' -X ${method} ${auth} ${shq(`http://127.0.0.1:9742${path}`)}`, { ns: this.name, timeoutMs: 90_000 });
    const text = r.stdout.replace(/\n(\d{3})$/, '');
    return { status: Number(/(\d{3})$/.exec(r.stdout)?.[1] ?? 0), body: JSON.parse(text || 'null') as T };
  }

  /**
   * Writes a changed config and asks the running daemon to reload it (POST /api/v1/config/reload, the same
   * path as SIGHUP). Resolves with the daemon's answer.
   */
  async reconfigure(change: (config: Record<string, unknown>) => Record<string, unknown>): Promise<{ status: number; body: Record<string, unknown> }> {
    await this.writeConfig(change(this.currentConfig));
    return this.api('/api/v1/config/reload', 'POST');
  }

  /** Every daemon log of this host so far, oldest first. */
  log(): string {
    return this.logs.map((p) => `--- ${p.name} ---\n${p.log()}`).join('\n');
  }
}

export interface HaLabOptions extends HaLabSpec {
  /**
   * The daemons' log level (default info). debug adds every line keepalived prints; under emulation that
   * volume, written synchronously to a pipe into the shared run directory, holds up the daemon itself.
   */
  logLevel?: 'debug' | 'info';
  /** Use this VM (fresh, without a topology) instead of booting one; it is not stopped by stop(). */
  vm?: Vm;
  backend?: Backend;
  /** Start both daemons and wait for the groups to settle (default true). */
  startDaemons?: boolean;
}

export class HaLab {
  readonly hosts: readonly [HaHost, HaHost];
  private ownVm = false;

  private constructor(
    readonly vm: Vm,
    readonly spec: CheckedHaSpec,
    readonly logLevel: 'debug' | 'info',
  ) {
    this.hosts = [new HaHost(this, HA_HOSTS[0]), new HaHost(this, HA_HOSTS[1])];
  }

  /** Boots (or takes) a VM and builds the whole lab; with startDaemons (default) both hosts run and have settled. */
  static async start(opts: HaLabOptions = {}): Promise<HaLab> {
    const spec = checkHaSpec(opts);
    if (!existsSync(kubectlBin)) throw new Error(`ha lab: ${kubectlBin} is missing; run npm run setup`);
    const vm = opts.vm ?? (await startVm(opts.backend ? { backend: opts.backend } : {}));
    const lab = new HaLab(vm, spec, opts.logLevel ?? 'info');
    lab.ownVm = opts.vm === undefined;
    try {
      await lab.build();
      if (opts.startDaemons !== false) {
        await Promise.all(lab.hosts.map((h) => h.startDaemon()));
        await lab.settled();
      }
    } catch (err) {
      if (lab.ownVm) await vm.stop().catch(() => undefined);
      throw err;
    }
    return lab;
  }

  host(name: 'lb1' | 'lb2'): HaHost {
    return name === 'lb1' ? this.hosts[0] : this.hosts[1];
  }

  other(h: HaHost): HaHost {
    return h === this.hosts[0] ? this.hosts[1] : this.hosts[0];
  }

  private async build(): Promise<void> {
    const vm = this.vm;
    await applyTopology(vm, haTopology());
    await vm.run(`modprobe -a ip_vs ip_vs_mh ip_vs_rr ip_vs_wlc && mkdir -p ${HA_DIR}/kube ${this.hosts.map((h) => `${h.paths.stateDir} ${h.paths.runDir}`).join(' ')}`);
    for (const h of this.hosts) await h.writeConfig();
    await vm.spawn('kube-sim', ['node', cli, 'lab', '--port', String(HA_KUBE_PORT), '--dir', `${HA_DIR}/kube`], { ns: HA_KUBE_HOST.name });
    await vm.spawn('kube-fwd', ['socat', `TCP4-LISTEN:${HA_KUBE_PORT},bind=${HA_KUBE_HOST.ip},fork,reuseaddr`, `TCP4:127.0.0.1:${HA_KUBE_PORT}`], { ns: HA_KUBE_HOST.name });
    for (const h of this.hosts) {
      await vm.spawn(`kube-fwd-${h.name}`, ['socat', `TCP4-LISTEN:${HA_KUBE_PORT},bind=127.0.0.1,fork,reuseaddr`, `TCP4:${HA_KUBE_HOST.ip}:${HA_KUBE_PORT}`], { ns: h.name });
    }
    await until('the API simulator', async () => ((await vm.exec(['test', '-s', kubeconfigPath])).code === 0 ? true : undefined), { timeoutMs: 60_000 });
    await until('the API through the LB hosts', async () => ((await this.kubectl('get', 'nodes', '-o', 'name')).code === 0 ? true : undefined), { timeoutMs: 60_000 });
    // The allocator's Lease lives there.
    await this.kubectlOk('create', 'namespace', 'ipvs-lb');
  }

  /** kubectl against the simulator, run on lb1 (through its forwarded loopback port). */
  kubectl(...args: string[]): Promise<ExecResult> {
    return this.vm.exec([kubectlBin, '--kubeconfig', kubeconfigPath, ...args], { ns: HA_HOSTS[0].name, timeoutMs: 60_000 });
  }

  async kubectlOk(...args: string[]): Promise<string> {
    const r = await this.kubectl(...args);
    if (r.code !== 0) throw new Error(`ha lab: kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr || r.stdout}`);
    return r.stdout;
  }

  /** Creates a LoadBalancer Service (ports 80 and 7 of the whoami pods) with its VIP from `pool`; returns the VIP. */
  async createService(name: string, pool: string): Promise<string> {
    const file = `${HA_DIR}/kube/svc-${name}.yaml`;
    await this.vm.writeFile(file, haService(name, pool));
    await this.kubectlOk('apply', '-f', file);
    return this.vipOf(name);
  }

  /** Waits until the Service shows its VIP in status.loadBalancer.ingress and returns it. */
  vipOf(name: string, timeoutMs = 90_000): Promise<string> {
    return until(`a VIP for Service ${name}`, async () => {
      const r = await this.kubectl('get', 'svc', name, '-o', 'jsonpath={.status.loadBalancer.ingress[0].ip}');
      return r.code === 0 && /^192\.0\.2\.\d+$/.test(r.stdout.trim()) ? r.stdout.trim() : undefined;
    }, { timeoutMs, describe: () => this.hosts.map((h) => h.log().slice(-1500)).join('\n') });
  }

  /**
   * Both hosts at one moment: daemon VRRP view, addresses on eth0, link, keepalived pid and, with `sync`, the
   * IPVS sync daemons. One guest command with few processes: under emulation every process start costs the
   * keepalived next door its timing, so polls are kept cheap and slow (see settled()).
   */
  async snapshot(opts: { sync?: boolean } = {}): Promise<LabSnapshot> {
    const parts = this.hosts.map((h) => `echo "@@host ${h.name}"
ip netns exec ${h.name} curl -s -m 5 http://127.0.0.1:9742/api/v1/vrrp || echo '{"down":true}'
echo
printf '%s\\n' 'addr show dev eth0' 'link show dev eth0' | ip -n ${h.name} -o -4 -batch - | awk 'BEGIN { print "@@addr" } /^[0-9]+: [^ ]+: </ { print "@@link" } { print }'
echo "@@ka"
{ read -r m < ${shq(h.keepalived.pid)} && kill -0 "$m" 2>/dev/null && echo "$m"; } || echo none
echo "@@sync"
${opts.sync ? `ip netns exec ${h.name} ipvsadm -L --daemon 2>/dev/null || true` : ':'}`).join('\n');
    const r = await this.vm.run(parts, { timeoutMs: 60_000 });
    return parseSnapshot(r.stdout, this.hosts.map((h) => h.info.ip));
  }

  /**
   * Turns preemption on or off for every group on both hosts (a reload; keepalived keeps its states). Without
   * preemption the layout is whatever the first election gave: to start active-active without preemption,
   * start with `preempt: true`, wait for settled(), then setPreempt(false).
   */
  async setPreempt(on: boolean): Promise<void> {
    for (const h of this.hosts) {
      const r = await h.reconfigure((c) => {
        const v = c.vrrp as { groups: Array<Record<string, unknown>> };
        return { ...c, vrrp: { ...v, groups: v.groups.map((g) => ({ ...g, preempt: on })) } };
      });
      if (r.status !== 200) throw new Error(`ha lab: reload on ${h.name} refused: ${JSON.stringify(r.body)}`);
    }
  }

  /** Which hosts have `vip` on eth0. */
  async holders(vip: string, snap?: LabSnapshot): Promise<Array<'lb1' | 'lb2'>> {
    const s = snap ?? (await this.snapshot());
    return (['lb1', 'lb2'] as const).filter((n) => s[n].addresses.includes(vip));
  }

  /** The host that is MASTER of `group` in its daemon's view, if exactly one is. */
  static masterOf(snap: LabSnapshot, group: string): 'lb1' | 'lb2' | undefined {
    const m = (['lb1', 'lb2'] as const).filter((n) => snap[n].groups[group]?.state === 'MASTER');
    return m.length === 1 ? m[0] : undefined;
  }

  /**
   * Waits until every group has exactly one MASTER and the other host is BACKUP, the master holds the group's
   * VIPs and the backup none of them; returns the snapshot. `expect` pins who masters which group.
   */
  async settled(expect: Record<string, 'lb1' | 'lb2'> = {}, timeoutMs = 180_000): Promise<LabSnapshot> {
    let last: LabSnapshot | undefined;
    return until('the VRRP groups to settle (one MASTER, one BACKUP, VIPs on the master only)', async () => {
      const s = (last = await this.snapshot());
      for (const g of this.spec.groups) {
        const master = HaLab.masterOf(s, g.name);
        if (!master || (expect[g.name] && expect[g.name] !== master)) return undefined;
        const backup = master === 'lb1' ? 'lb2' : 'lb1';
        if (!s[master].daemon || !s[backup].daemon || s[backup].groups[g.name]?.state !== 'BACKUP') return undefined;
        const vips = s[master].groups[g.name]?.vips ?? [];
        if (!vips.every((v) => s[master].addresses.includes(v) && !s[backup].addresses.includes(v))) return undefined;
      }
      return s;
    }, { timeoutMs, everyMs: 1000, describe: () => `last snapshot: ${JSON.stringify(last)}` });
  }

  /** HTTP GETs through the VIP from the client, one new connection each; answers or "curl-failed ...". */
  async curlFromClient(vip: string, n = 1): Promise<string[]> {
    const r = await this.vm.exec(`for i in $(seq ${Math.max(1, Math.floor(n))}); do curl -s -m 5 http://${vip}/ || echo "curl-failed exit=$?"; done`, { ns: HA_CLIENT.name, timeoutMs: 30_000 + n * 6_000 });
    return r.stdout.split('\n').filter((l) => l.trim() !== '');
  }

  /**
   * Which LB host the router (the client's way in) sends `vip`'s traffic to: the host whose MAC its
   * neighbour entry holds, after a GARP or an ARP reply. undefined without an entry.
   */
  async routerSends(vip: string): Promise<'lb1' | 'lb2' | undefined> {
    const r = await this.vm.run(['ip', '-n', 'router', 'neigh', 'show', vip]);
    const mac = /lladdr ([0-9a-f:]{17})/.exec(r.stdout)?.[1];
    if (!mac) return undefined;
    for (const h of this.hosts) if ((await h.mac()) === mac) return h.name;
    return undefined;
  }

  /** The IPVS connection table of a host (ipvsadm -Lnc). */
  async connections(host: 'lb1' | 'lb2'): Promise<string> {
    return (await this.vm.run(['ipvsadm', '-Lnc'], { ns: host })).stdout;
  }

  /** Host path of a file in the VM's shared run directory (for results the guest writes). */
  runFile(name: string): string {
    return join(this.vm.runDir, name);
  }

  /** Reads a file of the shared run directory on the host; '' when it does not exist yet. */
  readRunFile(name: string): string {
    const p = this.runFile(name);
    return existsSync(p) ? readFileSync(p, 'utf8') : '';
  }

  /** Everything the daemons logged, for failure messages. */
  logs(): string {
    return this.hosts.map((h) => h.log()).join('\n');
  }

  /** Stops the daemons (releasing VIPs, stopping keepalived) and, if the lab booted it, the VM. */
  async stop(): Promise<void> {
    try {
      if (this.vm.running) await Promise.all(this.hosts.map((h) => h.stopDaemon().catch(() => undefined)));
    } finally {
      if (this.ownVm) await this.vm.stop();
    }
  }
}

/** Parses the output of HaLab.snapshot()'s guest script. `ownIps` are left out of the addresses. */
export function parseSnapshot(text: string, ownIps: readonly string[]): LabSnapshot {
  const out: Partial<LabSnapshot> = {};
  const chunks = text.split(/^@@host /m).slice(1);
  for (const chunk of chunks) {
    const name = chunk.slice(0, chunk.indexOf('\n')).trim() as 'lb1' | 'lb2';
    const section = (tag: string): string => {
      const m = new RegExp(`^@@${tag}\\n([\\s\\S]*?)(?=^@@|$(?![\\s\\S]))`, 'm').exec(chunk);
      return m?.[1] ?? '';
    };
    const head = chunk.slice(chunk.indexOf('\n') + 1, chunk.indexOf('@@addr'));
    let api: { items?: GroupState[]; down?: boolean } = { down: true };
    try {
      api = JSON.parse(head.trim() || '{"down":true}') as typeof api;
    } catch {
      api = { down: true };
    }
    const groups: Record<string, GroupState> = {};
    for (const g of api.items ?? []) groups[g.name] = { name: g.name, state: g.state, transitions: g.transitions, vips: g.vips };
    const addresses = [...section('addr').matchAll(/\binet (\d+\.\d+\.\d+\.\d+)\/\d+/g)].map((m) => m[1]!).filter((a) => !ownIps.includes(a));
    const ka = section('ka').trim();
    const syncDaemons = section('sync').split('\n').map((l) => l.trim()).filter((l) => /sync daemon/.test(l));
    out[name] = {
      daemon: !api.down && Array.isArray(api.items),
      groups,
      addresses,
      linkUp: /<[^>]*\bUP\b[^>]*>/.test(section('link')),
      keepalivedPid: /^\d+$/.test(ka) ? Number(ka) : undefined,
      syncDaemons,
    };
  }
  if (!out.lb1 || !out.lb2) throw new Error(`ha lab: snapshot lacks a host: ${text.slice(0, 500)}`);
  return out as LabSnapshot;
}


