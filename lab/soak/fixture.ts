// The soak's lab: one micro-VM (real IPVS kernel) with two LB hosts, each running the real `ipvs-lb daemon`
// with its real keepalived (VRRP on, two active-active groups), three nodes, and the API simulator
// (`ipvs-lb lab`) on a host of its own. The simulator listens on its loopback only (its certificate is for
// 127.0.0.1), so socat forwards 127.0.0.1:6443 in each LB host to it over the LAN, the way a local
// apiserver proxy would. Thin adapter: it runs commands and reports what happened; decisions are elsewhere.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { applyTopology, labTimeScale, startVm, type Backend, type GuestProcess, type Vm } from '../vm/index.js';
import { findStalls, type Stall } from './explain.js';
import type { Fault, Op } from './generator.js';
import type { LogError } from './invariants.js';
import { observationScript, parseObservation, type Observation } from './observation.js';
import { opRequest, parseRequestOutput, requestScript } from './requests.js';
import { API_HOST, daemonConfig, FOREIGN_SERVICE, GROUPS, HOSTS, markerOf, NODES, type SoakHost } from './world.js';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');
const cli = join(root, 'bin', 'ipvs-lb.js');
const KUBE_DIR = '/tmp/kube';
const CA = `${KUBE_DIR}/ca.crt`;
const guestDir = (h: string) => `/tmp/soak/${h}`;
const guestRun = (h: string) => `${guestDir(h)}/run`;

export interface SoakLabOptions {
  backend?: Backend;
  memoryMb?: number;
  /** Keep the VM's artifacts (daemon, keepalived and simulator logs) here when it stops. */
  artifactsDir?: string;
  log?: (line: string) => void;
}

interface DaemonSlot {
  host: SoakHost;
  proc: GuestProcess;
  generation: number;
  /** Set when the harness killed this generation on purpose. */
  killed: boolean;
}

/** What an injected fault did, with the times the explanation rules need (guest clock = host clock). */
export interface FaultRecord {
  fault: Fault;
  step: number;
  /** Hosts the fault hit (the master whose keepalived died, the daemon killed). */
  hosts: string[];
  startedAt: number;
  endedAt: number;
  note: string;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class SoakLab {
  private readonly daemons = new Map<string, DaemonSlot>();
  private readonly exited: { host: string; exit: string; logTail: string }[] = [];
  private readonly token = randomBytes(18).toString('hex');
  private tokenFile = '';
  private bodyCounter = 0;
  /** How many times slower than UML this lab's backend runs the daemons (labTimeScale): waits, the daemons'
   * Lease timings and the soak's settle timeout stretch by it. */
  readonly slowdown: number;
  private constructor(readonly vm: Vm, private readonly say: (line: string) => void) {
    this.slowdown = labTimeScale(vm.backend);
  }

  static async start(o: SoakLabOptions = {}): Promise<SoakLab> {
    const say = o.log ?? (() => undefined);
    const vm = await startVm({ backend: o.backend ?? 'uml', memoryMb: o.memoryMb ?? 1024, ...(o.artifactsDir ? { artifactsDir: o.artifactsDir } : {}) });
    const lab = new SoakLab(vm, say);
    try {
      await lab.build();
    } catch (err) {
      await vm.stop().catch(() => undefined);
      throw err;
    }
    return lab;
  }

  private async build(): Promise<void> {
    const vm = this.vm;
    const t0 = Date.now();
    await applyTopology(vm, {
      lbs: HOSTS.map((h) => ({ name: h.name, ip: h.ip })),
      hosts: [{ name: API_HOST.name, ip: API_HOST.ip }],
      // The soak sends no traffic: nodes need only be routable IPVS destinations.
      nodes: NODES.map((n) => ({ name: n.name, ip: n.ip, vipMode: 'kube-ipvs0' as const, http: [] })),
    });
    await vm.run('modprobe -a ip_vs ip_vs_rr ip_vs_wrr ip_vs_wlc ip_vs_sh ip_vs_mh');
    // The guest's heartbeat (see explain.ts): bash builtins only, so it costs no process per beat.
    await vm.spawn('heartbeat', 'f=$(mktemp -u); mkfifo "$f"; exec 3<>"$f"; rm -f "$f"\nwhile :; do read -r -t 0.25 -u 3 _; echo "$EPOCHREALTIME"; done\n');
    mkdirSync(join(vm.runDir, 'soak'), { recursive: true });
    this.tokenFile = join(vm.runDir, 'soak', 'token');
    writeFileSync(this.tokenFile, this.token, { mode: 0o600 });
    await vm.spawn('kube-sim', ['node', cli, 'lab', '--port', String(API_HOST.port), '--dir', KUBE_DIR, '--token', this.token], { ns: API_HOST.name });
    await vm.spawn('fwd-api', ['socat', `TCP-LISTEN:${API_HOST.port},bind=${API_HOST.ip},fork,reuseaddr`, `TCP:127.0.0.1:${API_HOST.port}`], { ns: API_HOST.name });
    for (const h of HOSTS) {
      await vm.spawn(`fwd-${h.name}`, ['socat', `TCP-LISTEN:${API_HOST.port},bind=127.0.0.1,fork,reuseaddr`, `TCP:${API_HOST.ip}:${API_HOST.port}`], { ns: h.name });
    }
    await this.until('the API simulator', async () => (await vm.exec(['test', '-s', `${KUBE_DIR}/kubeconfig`])).code === 0, 120_000);
    await this.kube('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ipvs-lb' } });
    this.say(`lab: VM ${vm.id} (${vm.backend}), topology and API simulator up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const f = FOREIGN_SERVICE;
    for (const h of HOSTS) {
      // A service no Service owns: the daemons must leave it exactly as it is.
      await vm.run(['ipvsadm', '-A', '-t', `${f.address}:${f.port}`, '-s', f.scheduler], { ns: h.name });
      await vm.writeFile(`${guestDir(h.name)}/config.yaml`, stringify(daemonConfig(h, { stateDir: `${guestDir(h.name)}/state`, runDir: guestRun(h.name), kubeconfig: `${KUBE_DIR}/kubeconfig` }, this.slowdown)));
    }
    // One after the other: the first becomes master of both groups (nopreempt), which the faults then move.
    for (const h of HOSTS) {
      await this.startDaemon(h);
      await this.waitReady(h.name);
    }
    this.say(`lab: both daemons ready after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }

  /** Waits for `check`; the timeout stretches with the backend (`slowdown`). */
  async until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
    const end = Date.now() + timeoutMs * this.slowdown;
    for (;;) {
      if (await check().catch(() => false)) return;
      if (Date.now() > end) throw new Error(`soak lab: timed out waiting for ${what}`);
      await sleep(500);
    }
  }

  private async startDaemon(h: SoakHost): Promise<void> {
    const prev = this.daemons.get(h.name);
    const generation = (prev?.generation ?? 0) + 1;
    const proc = await this.vm.spawn(`daemon-${h.name}-${generation}`, ['node', cli, 'daemon', '--config', `${guestDir(h.name)}/config.yaml`], { ns: h.name });
    this.daemons.set(h.name, { host: h, proc, generation, killed: false });
  }

  async waitReady(host: string, timeoutMs = 120_000): Promise<void> {
    await this.until(`daemon ${host} ready`, async () => {
      const r = await this.vm.exec(['curl', '-sS', '--max-time', '5', 'http://127.0.0.1:9742/readyz'], { ns: host });
      return r.code === 0 && (JSON.parse(r.stdout) as { ready?: boolean }).ready === true;
    }, timeoutMs);
  }

  /** A request to the simulator (its API or its admin API under /kube-sim/v1/), from its own host. */
  async kube(method: string, path: string, body?: unknown): Promise<{ code: number; body: string }> {
    const args = ['curl', '-sS', '--max-time', '15', '-w', '\n%{http_code}', '--cacert', CA, '-H', `Authorization: Bearer ${this.token}`, '-X', method];
    if (body !== undefined) {
      const file = join(this.vm.runDir, 'soak', `body-${++this.bodyCounter}.json`);
      writeFileSync(file, JSON.stringify(body));
      args.push('-H', 'Content-Type: application/json', '--data-binary', `@${file}`);
    }
    args.push(`https://127.0.0.1:${API_HOST.port}${path}`);
    const r = await this.vm.exec(args, { ns: API_HOST.name, timeoutMs: 30_000 });
    const lines = r.stdout.split('\n');
    const code = Number(lines.pop());
    return { code: Number.isInteger(code) ? code : 0, body: lines.join('\n') };
  }

  /** Like kube(), but retries while the simulator is down (an outage fault may be running). */
  async admin(method: string, path: string, body?: unknown, timeoutMs = 60_000): Promise<string> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const r = await this.kube(method, path, body);
      if (r.code >= 200 && r.code < 300) return r.body;
      if (r.code !== 0 && r.code < 500) throw new Error(`soak lab: ${method} ${path} answered ${r.code}: ${r.body.slice(0, 500)}`);
      if (Date.now() > end) throw new Error(`soak lab: ${method} ${path} still failing (${r.code}) after ${timeoutMs} ms`);
      await sleep(500);
    }
  }

  /** Sends the step's operations in order; returns the HTTP code of each. */
  async apply(ops: readonly Op[]): Promise<number[]> {
    if (ops.length === 0) return [];
    const reqs = ops.map(opRequest);
    const dir = join(this.vm.runDir, 'soak', `ops-${++this.bodyCounter}`);
    mkdirSync(dir, { recursive: true });
    reqs.forEach((r, i) => {
      if (r.body !== undefined) writeFileSync(join(dir, `${i}.json`), JSON.stringify(r.body));
    });
    const script = requestScript(reqs, { bodyFile: (i) => join(dir, `${i}.json`), url: `https://127.0.0.1:${API_HOST.port}`, caFile: CA, tokenFile: this.tokenFile, retryForMs: 60_000 });
    const r = await this.vm.exec(script, { ns: API_HOST.name, timeoutMs: 120_000 });
    return parseRequestOutput(r.stdout, reqs.length);
  }

  async observe(): Promise<Observation> {
    const r = await this.vm.exec(observationScript({ caFile: CA, tokenFile: this.tokenFile }), { timeoutMs: 90_000 });
    return parseObservation(r.stdout);
  }

  async setNodeReady(node: string, ready: boolean): Promise<void> {
    await this.admin('PUT', `/kube-sim/v1/nodes/${node}/ready`, { ready });
  }

  private async masterOf(group: string): Promise<string | undefined> {
    const g = GROUPS.find((x) => x.name === group)!;
    for (const h of HOSTS) {
      const r = await this.vm.exec(['ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0'], { ns: h.name });
      if (r.stdout.includes(`inet ${markerOf(g)}/`)) return h.name;
    }
    return undefined;
  }

  /** The pid in one of the host's pid files, if that process is alive and has the expected command name. */
  private async pidOf(host: string, file: string, comm: string): Promise<number | undefined> {
    const r = await this.vm.exec(`p=$(cat ${guestRun(host)}/${file} 2>/dev/null) && [ "$(cat /proc/$p/comm 2>/dev/null)" = ${comm} ] && echo $p`);
    const pid = Number(r.stdout.trim());
    return r.code === 0 && Number.isInteger(pid) && pid > 1 ? pid : undefined;
  }

  /**
   * Injects a fault and carries it through to its end (a killed daemon restarted, the API back), except a
   * NotReady node, which the plan turns Ready again in a later step. `during` runs while the fault is on
   * (the step's operations), so the system meets them mid-failure.
   */
  async inject(fault: Fault, step: number, during: () => Promise<void>): Promise<FaultRecord> {
    const startedAt = Date.now();
    const rec = (hosts: string[], note: string): FaultRecord => ({ fault, step, hosts, startedAt, endedAt: Date.now(), note });
    switch (fault.kind) {
      case 'vrrp-master-kill': {
        const host = await this.masterOf(fault.group);
        if (!host) {
          await during();
          return rec([], `group ${fault.group} had no master: nothing killed`);
        }
        const parent = await this.pidOf(host, 'keepalived.pid', 'keepalived');
        const child = fault.all ? await this.pidOf(host, 'keepalived-vrrp.pid', 'keepalived') : undefined;
        const pids = [parent, child].filter((p): p is number => p !== undefined);
        if (pids.length > 0) await this.vm.exec(['kill', '-KILL', ...pids.map(String)]);
        await during();
        return rec([host], `killed keepalived on ${host} (pids ${pids.join(' ') || 'none found'})`);
      }
      case 'daemon-kill': {
        const slot = this.daemons.get(fault.host)!;
        slot.killed = true;
        let note: string;
        if (fault.withKeepalived) {
          // The LB host's software dies at once: the daemon, keepalived and its VRRP child. keepalived is
          // not always in the daemon's process group (an adopted one stays in its first daemon's), so its
          // pid files name it.
          const pids = [await this.pidOf(fault.host, 'ipvs-lb.pid', 'ipvs-lb'), await this.pidOf(fault.host, 'keepalived.pid', 'keepalived'), await this.pidOf(fault.host, 'keepalived-vrrp.pid', 'keepalived')]
            .filter((p): p is number => p !== undefined);
          await this.vm.exec(`kill -KILL ${pids.join(' ')} 2>/dev/null; kill -KILL -- -${slot.proc.pid} 2>/dev/null; exit 0`);
          note = `killed daemon ${fault.host} generation ${slot.generation} with its keepalived (pids ${pids.join(' ')})`;
        } else {
          const pid = await this.pidOf(fault.host, 'ipvs-lb.pid', 'ipvs-lb');
          if (pid !== undefined) await this.vm.exec(['kill', '-KILL', String(pid)]);
          note = `killed daemon ${fault.host} generation ${slot.generation} (pid ${pid ?? 'not found'}); its keepalived lives on`;
        }
        await slot.proc.wait(30_000).catch(() => undefined);
        await during();
        const rest = fault.downMs - (Date.now() - startedAt);
        if (rest > 0) await sleep(rest);
        await this.startDaemon(slot.host);
        return rec([fault.host], `${note}; restarted as generation ${slot.generation + 1}`);
      }
      case 'api-outage':
        await this.admin('POST', '/kube-sim/v1/restart', { downMs: fault.downMs, compact: fault.compact });
        await during();
        await this.until('the API simulator back', async () => (await this.kube('GET', '/version')).code === 200, fault.downMs + 60_000);
        return rec([], 'simulator restarted');
      case 'api-errors':
        await this.admin('POST', '/kube-sim/v1/faults', { status: fault.status, durationMs: fault.durationMs });
        await during();
        {
          const rest = fault.durationMs - (Date.now() - startedAt);
          if (rest > 0) await sleep(rest);
        }
        return rec([], 'failure window over');
      case 'watch-drop': {
        const body = await this.admin('POST', '/kube-sim/v1/drop-watches', { abrupt: fault.abrupt });
        await during();
        return rec([], `dropped ${(JSON.parse(body) as { dropped?: number }).dropped ?? '?'} watch(es)`);
      }
      case 'node-notready':
        await this.setNodeReady(fault.node, false);
        await during();
        return rec([], `${fault.node} NotReady`);
    }
  }

  /** Error-level (and worse) lines of every daemon generation's log. */
  logErrors(): LogError[] {
    const out: LogError[] = [];
    for (const h of HOSTS) {
      const slot = this.daemons.get(h.name);
      for (let g = 1; g <= (slot?.generation ?? 0); g++) {
        const path = this.vm.logPath(`daemon-${h.name}-${g}`);
        if (!existsSync(path)) continue;
        for (const line of readFileSync(path, 'utf8').split('\n')) {
          if (!line.startsWith('{')) continue;
          try {
            const j = JSON.parse(line) as { level?: number | string; time?: number | string; msg?: string };
            // The daemon logs level labels and ISO times (src/util/log.ts); pino's defaults are numbers.
            const severe = typeof j.level === 'number' ? j.level >= 50 : j.level === 'error' || j.level === 'fatal';
            const time = typeof j.time === 'number' ? j.time : Date.parse(j.time ?? '') || 0;
            if (severe) out.push({ host: h.name, time, msg: j.msg ?? '', line: line.length > 600 ? `${line.slice(0, 600)}…` : line });
          } catch {
            // A line cut by a SIGKILL: not a log record.
          }
        }
      }
    }
    return out;
  }

  /** The guest's stalls so far (seconds in which it did not run at all). */
  stalls(minMs = 2000): Stall[] {
    const path = this.vm.logPath('heartbeat');
    return existsSync(path) ? findStalls(readFileSync(path, 'utf8'), minMs) : [];
  }

  /** Daemons that exited although the harness did not kill them (each reported once, then restarted). */
  async reapUnexpectedExits(): Promise<{ host: string; exit: string; logTail: string }[]> {
    for (const [host, slot] of this.daemons) {
      if (slot.killed) continue;
      const exitFile = join(this.vm.runDir, 'procs', `${slot.proc.name}.exit`);
      if (!existsSync(exitFile)) continue;
      this.exited.push({ host, exit: `exit status ${readFileSync(exitFile, 'utf8').trim()}`, logTail: slot.proc.log().slice(-4000) });
      slot.killed = true;
      await this.startDaemon(slot.host);
    }
    return [...this.exited];
  }

  /** Paths of the logs a person needs to reproduce a finding. */
  logPaths(): string[] {
    const out = [this.vm.logPath('kube-sim')];
    for (const [host, slot] of this.daemons) for (let g = 1; g <= slot.generation; g++) out.push(this.vm.logPath(`daemon-${host}-${g}`));
    return out;
  }

  async stop(): Promise<string> {
    // SIGTERM to the daemon alone, so it releases its VIPs and stops its keepalived itself, as under systemd.
    for (const slot of this.daemons.values()) {
      const pid = await this.pidOf(slot.host.name, 'ipvs-lb.pid', 'ipvs-lb').catch(() => undefined);
      if (pid !== undefined) await this.vm.exec(['kill', '-TERM', String(pid)]).catch(() => undefined);
    }
    for (const slot of this.daemons.values()) await slot.proc.wait(15_000).catch(() => slot.proc.stop({ signal: 'KILL' }).catch(() => undefined));
    return this.vm.stop();
  }
}
