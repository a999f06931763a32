// One failover trial in the HA lab, measured from the client's side (lab/ha/prober.ts): the current master's
// NIC is downed and its keepalived SIGKILLed (parent and VRRP child), which is what the network sees when a
// host dies; the figure is the time from that instant to the first new TCP connection through the VIP that
// worked, and whether a TCP stream established before it kept working. Afterwards the dead host comes back
// (link up; its daemon has restarted keepalived meanwhile) and the lab settles again.
import { fileURLToPath } from 'node:url';
import { ROUTER, shq, type GuestProcess } from '../vm/index.js';
import { HaLab, until, type LabSnapshot } from './fixture.js';
import { HA_CLIENT, HA_DIR, HA_PORTS } from './plan.js';

import type { ProberLine, TrialOutcome } from './prober.js';

const proberJs = fileURLToPath(new URL('prober.js', import.meta.url));

/** The prober running in the client's namespace for the whole session. */
export class FailoverProber {
  private id = 0;
  private readonly ctl = `${HA_DIR}/probe.ctl`;
  private readonly outName: string;

  private constructor(
    private readonly lab: HaLab,
    readonly process: GuestProcess,
    outName: string,
    /** `ip -ts monitor link` on each LB host's eth0: when a NIC really went down, by the kernel's event. */
    readonly linkMonitors: Record<'lb1' | 'lb2', GuestProcess>,
    /** `ip -ts monitor neigh` on the router: when the gratuitous ARP for the VIP reached the client's path. */
    readonly routerNeighbours: GuestProcess,
  ) {
    this.outName = outName;
  }

  /** Starts the prober against VIP:7 (the nodes' echo servers) and waits until it listens for commands. */
  static async start(lab: HaLab, vip: string, name = 'prober'): Promise<FailoverProber> {
    const outName = `${name}.jsonl`;
    const p = await lab.vm.spawn(name, ['node', proberJs, '--ctl', `${HA_DIR}/probe.ctl`, '--out', lab.runFile(outName), '--vip', vip, '--port', String(HA_PORTS.echo)], { ns: HA_CLIENT.name });
    const monitors: Partial<Record<'lb1' | 'lb2', GuestProcess>> = {};
    // ip prints local time; UTC makes it the epoch's.
    for (const h of lab.hosts) monitors[h.name] = await lab.vm.spawn(`${name}-link-${h.name}`, ['env', 'TZ=UTC', 'stdbuf', '-oL', 'ip', '-ts', 'monitor', 'link', 'dev', 'eth0'], { ns: h.name });
    const neigh = await lab.vm.spawn(`${name}-neigh-router`, ['env', 'TZ=UTC', 'stdbuf', '-oL', 'ip', '-ts', 'monitor', 'neigh'], { ns: ROUTER.name });
    const prober = new FailoverProber(lab, p, outName, monitors as Record<'lb1' | 'lb2', GuestProcess>, neigh);
    await until('the prober to start', async () => (prober.lines().some((l) => l.event === 'ready') ? true : undefined), { timeoutMs: 60_000, describe: () => p.log() });
    return prober;
  }

  lines(): ProberLine[] {
    return this.lab
      .readRunFile(this.outName)
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as ProberLine);
  }

  nextId(): number {
    return ++this.id;
  }

  /** The bash line that sends one command to the prober (for guest scripts). */
  command(c: Record<string, unknown>): string {
    return `printf '%s\\n' ${shq(JSON.stringify(c))} > ${shq(this.ctl)}`;
  }

  async send(c: Record<string, unknown>): Promise<void> {
    await this.lab.vm.run(this.command(c));
  }

  /** Waits for the prober's line of trial `id` with `event`. Errors of that trial fail at once. */
  async wait<E extends ProberLine['event']>(id: number, event: E, timeoutMs = 60_000): Promise<Extract<ProberLine, { event: E }>> {
    return until(`prober ${event} of trial ${id}`, async () => {
      const mine = this.lines().filter((l) => l.id === id);
      const err = mine.find((l) => l.event === 'error');
      if (err && err.event === 'error') throw new Error(`prober: ${err.message}`);
      return mine.find((l) => l.event === event) as Extract<ProberLine, { event: E }> | undefined;
    }, { timeoutMs, everyMs: 100, describe: () => this.process.log().slice(-2000) });
  }

  async stop(): Promise<void> {
    await this.send({ cmd: 'quit' }).catch(() => undefined);
    await this.process.stop({ timeoutMs: 5_000 });
    for (const m of [...Object.values(this.linkMonitors), this.routerNeighbours]) await m.stop({ timeoutMs: 5_000 }).catch(() => undefined);
  }
}

/** Epoch ms of each "link went down" event in `ip -ts monitor link` output (run with TZ=UTC). */
export function linkDownTimes(log: string): number[] {
  const out: number[] = [];
  for (const m of log.matchAll(/^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{6})\] \d+: [^:\s]+: <([^>]*)>/gm)) {
    if (!m[3]!.split(',').includes('UP')) out.push(Date.parse(`${m[1]}Z`) + Number(m[2]) / 1000);
  }
  return out;
}

/** Epoch ms of each `ip -ts monitor neigh` line that shows `address` at `mac` (run with TZ=UTC). */
export function neighbourTimes(log: string, address: string, mac: string): number[] {
  const out: number[] = [];
  const re = new RegExp(`^\\[(\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d)\\.(\\d{6})\\] ${address.replace(/\./g, '\\.')} dev \\S+ lladdr ${mac.toLowerCase()}\\b`, 'gm');
  for (const m of log.matchAll(re)) out.push(Date.parse(`${m[1]}Z`) + Number(m[2]) / 1000);
  return out;
}

export interface FailoverTrial {
  /** The host that was master and was killed. */
  killed: 'lb1' | 'lb2';
  /** The host that serves the VIP afterwards. */
  took: 'lb1' | 'lb2';
  failoverMs: number;
  /** null when the trial ran without a stream. */
  streamSurvived: boolean | null;
  streamError: string | null;
  /**
   * Where the time went, from the taker's daemon log (ms after the kill): keepalived's MASTER notification
   * reached the daemon (its "keepalived notify" line), and the daemon had bound the group's VIPs (its
   * "→ MASTER" report follows the bind; the gratuitous ARP is started right after), and the router's
   * neighbour entry for the VIP pointed at the taker (its gratuitous ARP arrived). undefined if not seen.
   */
  breakdown: { keepalivedMasterMs: number | undefined; vipBoundMs: number | undefined; routerLearnedMs: number | undefined };
  /** Wall time of the trial's phases on the host, ms: settle, stream synced, probing, result, restored. */
  phasesMs: Record<'settle' | 'stream' | 'probing' | 'result' | 'restore', number>;
  outcome: TrialOutcome;
}

interface LogLine {
  time?: string;
  msg?: string;
  keepalived?: string;
  notify?: { name?: string; state?: string };
}

/** From a daemon's JSON log: ms after t0 of the first line at or after t0 that matches. */
export function firstLogAfter(log: string, t0: number, match: (l: LogLine) => boolean): number | undefined {
  for (const raw of log.split('\n')) {
    if (!raw.startsWith('{')) continue;
    let l: LogLine;
    try {
      l = JSON.parse(raw) as LogLine;
    } catch {
      continue;
    }
    const at = l.time ? Date.parse(l.time) : NaN;
    if (Number.isFinite(at) && at >= Math.floor(t0) && match(l)) return at - t0;
  }
  return undefined;
}

export interface TrialOptions {
  group: string;
  vip: string;
  /** Hold an established TCP stream across the failover (default true). */
  stream?: boolean;
  /** After the trial, bring the dead host back and wait until the groups settle (default true). */
  restore?: boolean;
}

/** Waits until the backup's IPVS connection table lists the client's stream (the sync daemon sent it). */
async function waitForSyncedStream(lab: HaLab, backup: 'lb1' | 'lb2', localPort: number): Promise<void> {
  const needle = `${HA_CLIENT.ip}:${localPort} `;
  await until(`the stream from port ${localPort} in ${backup}'s IPVS table (sync daemon)`, async () => ((await lab.connections(backup)).includes(needle) ? true : undefined), {
    timeoutMs: 30_000, everyMs: 500, describe: async () => `${backup}: ${await lab.connections(backup)}`,
  });
}

export async function failoverTrial(lab: HaLab, prober: FailoverProber, o: TrialOptions): Promise<FailoverTrial> {
  let mark = Date.now();
  const phase = (): number => {
    const now = Date.now();
    const d = now - mark;
    mark = now;
    return d;
  };
  const phasesMs = { settle: 0, stream: 0, probing: 0, result: 0, restore: 0 };
  const before: LabSnapshot = await lab.settled();
  phasesMs.settle = phase();
  const masterName = HaLab.masterOf(before, o.group)!;
  const master = lab.host(masterName);
  const backup = lab.other(master);
  const id = prober.nextId();
  if (o.stream !== false) {
    await prober.send({ cmd: 'stream-open', id });
    const opened = await prober.wait(id, 'stream-open');
    await waitForSyncedStream(lab, backup.name, opened.localPort);
  }
  phasesMs.stream = phase();
  const ka = master.keepalived;
  // Probing starts; once a connection through the VIP has worked, the host "dies": NIC down, keepalived
  // SIGKILLed right after. t0 is the kernel's link-down event as `ip -ts monitor link` on that host saw it,
  // not a clock read around the `ip link set` process: under emulation that process takes 80 ms to over a
  // second, during which the NIC is still up (a clock read before it would count connections the old master
  // still served; one after it missed part of the election, and both were seen to flatter the figure).
  await prober.send({ cmd: 'probe', id });
  await prober.wait(id, 'probing');
  phasesMs.probing = phase();
  const monitor = prober.linkMonitors[master.name];
  const downsBefore = linkDownTimes(monitor.log()).length;
  await lab.vm.run(`set -e
read -r m < ${shq(ka.pid)}
read -r v < ${shq(ka.vrrpPid)}
ip -n ${master.name} link set eth0 down
kill -KILL "$m" "$v"`);
  const t0 = await until(`${master.name}'s link-down event`, async () => linkDownTimes(monitor.log())[downsBefore], { timeoutMs: 30_000, everyMs: 50, describe: () => monitor.log().slice(-1000) });
  await prober.send({ cmd: 'killed', id, t0: t0 / 1000 });
  const outcome = await prober.wait(id, 'result', 90_000);
  phasesMs.result = phase();
  if (outcome.failoverMs === null) throw new Error(`trial ${id}: no new connection through ${o.vip} succeeded after ${masterName} died\n${lab.logs().slice(-4000)}`);
  if (outcome.successesBeforeKill === 0) throw new Error(`trial ${id}: no connection worked through ${o.vip} before the kill, so the figure would mean nothing`);
  const after = await lab.snapshot();
  const holders = await lab.holders(o.vip, after);
  const took = holders.length === 1 ? holders[0]! : backup.name;
  const takerLog = lab.host(took).process?.log() ?? '';
  const takerMac = await lab.vm.run(`cat /sys/class/net/eth0/address`, { ns: took }).then((r) => r.stdout.trim()).catch(() => '');
  const learned = takerMac ? neighbourTimes(prober.routerNeighbours.log(), o.vip, takerMac).find((t) => t >= outcome.t0) : undefined;
  const breakdown = {
    routerLearnedMs: learned === undefined ? undefined : learned - outcome.t0,
    keepalivedMasterMs: firstLogAfter(takerLog, outcome.t0, (l) => l.msg === 'keepalived notify' && l.notify?.name === o.group && l.notify.state === 'MASTER'),
    vipBoundMs: firstLogAfter(takerLog, outcome.t0, (l) => l.msg !== undefined && l.msg.startsWith(`group ${o.group}: `) && l.msg.endsWith('→ MASTER')),
  };
  if (o.restore !== false) {
    await master.linkUp();
    await lab.settled();
  }
  phasesMs.restore = phase();
  return {
    killed: masterName, took, failoverMs: outcome.failoverMs,
    streamSurvived: outcome.stream ? outcome.stream.survived : null, streamError: outcome.stream?.error ?? null, breakdown, phasesMs, outcome,
  };
}
