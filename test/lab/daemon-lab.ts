// What the daemon lab tests share: the API simulator and the real `ipvs-lb daemon` in the LB host's
// namespace of a running lab VM, kubectl and the REST API from there, polling, and a client that keeps one
// TCP connection through a VIP open and reports every echoed line (so a test sees whether it survives).
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import type { GuestProcess, Vm } from '../../lab/vm/index.js';
import { labTimeScale } from '../../lab/vm/index.js';
import { poll } from '../../lab/poll.js';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');
const cli = join(root, 'bin', 'ipvs-lb.js');
const kubectlBin = join(root, '.cache', 'kubernetes-client', 'usr', 'bin', 'kubectl');
const simGuest = join(root, 'dist', 'test', 'lab', 'kube-sim-guest.js');

/** lab/poll.ts's poll() with the lab's time scale; `log` (a daemon's) goes into the timeout's message. */
export function until<T>(what: string, check: () => Promise<T | undefined>, opts: { timeoutMs?: number; log?: () => string } = {}): Promise<T> {
  const log = opts.log;
  return poll(what, check, { timeoutMs: (opts.timeoutMs ?? 60_000) * labTimeScale(), describe: log && (() => `--- daemon log ---\n${log().slice(-4000)}`) });
}

export interface LabDaemonOptions {
  vm: Vm;
  /** The LB host's namespace: the simulator and the daemon both run there (they share its loopback). */
  ns: string;
  nodes: Array<{ name: string; ips: string[] }>;
  serviceCIDRs?: string[];
  /** The daemon's config without kubernetes/stateDir/hostName, which this fills in. */
  config: Record<string, unknown>;
}

export class LabDaemon {
  daemon: GuestProcess | undefined;
  private starts = 0;
  readonly kubeDir: string;
  readonly stateDir: string;
  private readonly configPath: string;

  private constructor(private readonly o: LabDaemonOptions) {
    this.kubeDir = `/tmp/kube-${o.ns}`;
    this.stateDir = `/tmp/${o.ns}-state`;
    this.configPath = `/tmp/${o.ns}.yaml`;
  }

  static async start(o: LabDaemonOptions): Promise<LabDaemon> {
    const d = new LabDaemon(o);
    const spec = `${o.vm.runDir}/kube-sim-${o.ns}.json`;
    await o.vm.writeFile(spec, JSON.stringify({ dir: d.kubeDir, port: 6443, nodes: o.nodes, serviceCIDRs: o.serviceCIDRs }));
    await o.vm.run(['mkdir', '-p', d.kubeDir]);
    await o.vm.spawn(`kube-sim-${o.ns}`, ['node', simGuest, spec], { ns: o.ns });
    await until('the API simulator', async () => ((await o.vm.exec(['test', '-s', `${d.kubeDir}/admin.json`])).code === 0 ? true : undefined));
    await o.vm.writeFile(d.configPath, stringify({
      hostName: o.ns, stateDir: d.stateDir,
      kubernetes: { kubeconfig: `${d.kubeDir}/kubeconfig`, lease: { durationSeconds: 6, renewDeadlineSeconds: 4, retryPeriodSeconds: 1 } },
      ...o.config,
    }));
    await d.startDaemon();
    return d;
  }

  log = (): string => this.daemon?.log() ?? '';

  async startDaemon(): Promise<void> {
    this.daemon = await this.o.vm.spawn(`daemon-${this.o.ns}-${++this.starts}`, ['node', cli, 'daemon', '--config', this.configPath], { ns: this.o.ns });
    await until('the daemon API', async () => ((await this.api('/healthz')).status === 'ok' ? true : undefined), { log: this.log });
  }

  /** SIGTERM, as systemd stops it. */
  async stopDaemon(): Promise<void> {
    const r = await this.daemon?.stop({ timeoutMs: 20_000 });
    if (r?.killed) throw new Error(`the daemon did not stop on SIGTERM\n${this.log().slice(-3000)}`);
  }

  async kubectl(...args: string[]): Promise<string> {
    return (await this.o.vm.run([kubectlBin, '--kubeconfig', `${this.kubeDir}/kubeconfig`, ...args], { ns: this.o.ns, timeoutMs: 60_000 })).stdout;
  }

  async apply(name: string, yaml: string): Promise<void> {
    const file = `/tmp/${this.o.ns}-${name}.yaml`;
    await this.o.vm.writeFile(file, yaml);
    await this.kubectl('apply', '-f', file);
  }

  async api<T = Record<string, unknown>>(path: string, method = 'GET'): Promise<T> {
    const token = method === 'POST' ? ['-H', `Authorization: Bearer ${(await this.o.vm.readFile(`${this.stateDir}/api-token`)).trim()}`] : [];
    const r = await this.o.vm.run(['curl', '-sS', '-X', method, ...token, `http://127.0.0.1:9742${path}`], { ns: this.o.ns });
    return JSON.parse(r.stdout) as T;
  }

  /** The simulator's admin API (node readiness, endpoints). */
  async admin(method: string, path: string, body: unknown): Promise<void> {
    const a = JSON.parse(await this.o.vm.readFile(`${this.kubeDir}/admin.json`)) as { url: string; token: string };
    await this.o.vm.run(['curl', '-sS', '--fail-with-body', '-k', '-X', method, '-H', `Authorization: Bearer ${a.token}`, '-H', 'Content-Type: application/json', '--data', JSON.stringify(body), `${a.url}/kube-sim/v1/${path}`], { ns: this.o.ns });
  }

  async ipvsadm(...args: string[]): Promise<string> {
    return (await this.o.vm.run(['ipvsadm', ...args], { ns: this.o.ns })).stdout;
  }
}

/** A client that opens one TCP connection to an echo service and sends a numbered line every 200 ms, logging
 * `ok N` for each echo; on any failure it logs why and exits. */
export async function startStream(vm: Vm, name: string, clientNs: string, vip: string, port: number): Promise<Stream> {
  const script = `${vm.runDir}/stream-${name}.sh`;
  await vm.writeFile(script, `#!/bin/bash
exec 3<>/dev/tcp/${vip}/${port} || { echo "connect-failed"; exit 1; }
echo "connected"
i=0
while :; do
  i=$((i+1))
  echo "line $i" >&3 || { echo "write-failed $i"; exit 2; }
  IFS= read -r -t 10 got <&3 || { echo "read-failed $i"; exit 3; }
  [ "$got" = "line $i" ] || { echo "wrong-echo $i $got"; exit 4; }
  echo "ok $i"
  sleep 0.2
done
`, '0755');
  const proc = await vm.spawn(`stream-${name}`, ['bash', script], { ns: clientNs });
  const s = new Stream(proc);
  await until(`stream ${name} to connect`, async () => (s.oks() > 0 ? true : undefined), { log: () => proc.log() });
  return s;
}

export class Stream {
  constructor(readonly proc: GuestProcess) {}
  /** Echoed lines so far. */
  oks(): number {
    return this.proc.log().split('\n').filter((l) => l.startsWith('ok ')).length;
  }
  /** Why it stopped, if it did. */
  failure(): string | undefined {
    return this.proc.log().split('\n').find((l) => /^(connect|write|read)-failed|^wrong-echo/.test(l));
  }
  /** Waits for `more` further echoes, failing if the stream broke. */
  async flowing(more: number, what: string): Promise<void> {
    const start = this.oks();
    const end = Date.now() + 60_000;
    while (this.oks() < start + more) {
      const f = this.failure();
      if (f) throw new Error(`the stream broke (${what}): ${f}\n${this.proc.log().slice(-1000)}`);
      if (Date.now() > end) throw new Error(`the stream stalled (${what}): ${this.oks() - start} of ${more} echoes in 60 s`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
