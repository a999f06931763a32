// The kernel side of the DR path check (docs/health.md): one IPVS fwmark virtual service per node with that
// node as its only direct-routing real server, and an nftables rule that marks this daemon's own probe
// packets by source port (Node.js cannot set SO_MARK on a socket), so that a TCP connect from port P to
// VIP:port leaves the host with the VIP intact and the MAC of the node that owns P. Also the checks without
// which the probes would lie: accept_local (the node answers from the VIP, which this host holds while it is
// VRRP master), the source ports outside the kernel's ephemeral range, a source address per family. And the
// active-connection counts of draining destinations. Only marks in our range and services recorded as ours
// are ever touched.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import type { Config } from '../config/types.js';
import { parseIp, type Family } from '../ipam/address.js';
import { rangeContains } from '../ipam/range.js';
import { IpvsClient, type IpvsOp } from '../ipvs/index.js';
import type { Logger } from '../util/log.js';
import { IPTABLES_CHAIN, NFT_REMOVE, NFT_TABLE, renderIptablesRules, renderNftRules, type MarkPlan } from './marks.js';
import type { DrLane } from './types.js';

const SCHEDULER = 'rr';

interface DrRecord {
  /** node name → slot */
  slots: Record<string, number>;
  /** fwmark services we created, as `MARK/FAMILY` */
  services: string[];
}

export interface DrSyncResult {
  /** Families the DR check can run for on this host now. */
  families: Set<Family>;
  /** Why it cannot (or only partly): shown in /readyz messages and logged once per change. */
  problems: string[];
}

/** Whether [a1, a2] and [b1, b2] overlap. */
const overlaps = (a1: number, a2: number, b1: number, b2: number): boolean => a1 <= b2 && b1 <= a2;

export interface DrKernelOptions {
  config: () => Config;
  log: Logger;
  /** Where sysctls are read (tests point it elsewhere). */
  procSys?: string;
  /** Directory of nft and iptables-legacy(-restore), for tests; default: found on PATH. */
  binDir?: string;
}

export class DrPathKernel {
  private readonly recordPath: string;
  private record: DrRecord;
  private lastNft: string | undefined;
  private lastMarker: string | undefined;
  private readonly busy = new Map<string, Set<number>>();
  private readonly cursor = new Map<string, number>();
  private families = new Set<Family>();
  private sources: { 4?: string; 6?: string } = {};
  private problemText = '';

  private constructor(private readonly client: IpvsClient, private readonly o: DrKernelOptions) {
    this.recordPath = join(o.config().stateDir, 'health-dr.json');
    this.record = DrPathKernel.load(this.recordPath);
  }

  static async open(o: DrKernelOptions): Promise<DrPathKernel> {
    const client = await IpvsClient.open({ loadModule: false });
    return new DrPathKernel(client, o);
  }

  private static load(path: string): DrRecord {
    try {
      const r = JSON.parse(readFileSync(path, 'utf8')) as Partial<DrRecord>;
      const slots = r.slots && typeof r.slots === 'object' ? r.slots : {};
      for (const [k, v] of Object.entries(slots)) if (!Number.isInteger(v) || v < 0) throw new Error(`slots.${k}: must be a slot number (got ${JSON.stringify(v)})`);
      const services = Array.isArray(r.services) ? r.services.filter((s): s is string => typeof s === 'string') : [];
      return { slots, services };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { slots: {}, services: [] };
      throw new Error(`${path}: cannot read the record of the DR path check's fwmark services (${(err as Error).message}); refusing to guess which are ours`);
    }
  }

  private save(): void {
    mkdirSync(dirname(this.recordPath), { recursive: true });
    const tmp = `${this.recordPath}.tmp`;
    writeFileSync(tmp, `${JSON.stringify({ slots: this.record.slots, services: [...this.record.services].sort() }, null, 1)}\n`, { mode: 0o640 });
    renameSync(tmp, this.recordPath);
  }

  private get maxSlots(): number {
    const d = this.o.config().healthCheck.drPath;
    return Math.floor((d.sourcePorts.last - d.sourcePorts.first + 1) / d.probesPerNode);
  }

  private readSysctl(path: string): string | undefined {
    try {
      return readFileSync(join(this.o.procSys ?? '/proc/sys', path), 'utf8').trim();
    } catch {
      return undefined;
    }
  }

  /** The checks that decide whether probes through the VIP can be believed on this host. */
  private preflight(): { families: Set<Family>; problems: string[] } {
    const c = this.o.config();
    const d = c.healthCheck.drPath;
    const problems: string[] = [];
    const families = new Set<Family>([4, 6]);
    const range = this.readSysctl('net/ipv4/ip_local_port_range')?.split(/\s+/).map(Number);
    if (range && range.length === 2 && overlaps(range[0]!, range[1]!, d.sourcePorts.first, d.sourcePorts.last)) {
      problems.push(`healthCheck.drPath.sourcePorts ${d.sourcePorts.first}-${d.sourcePorts.last} overlaps net.ipv4.ip_local_port_range ${range[0]}-${range[1]}: other sockets could get marked ports; DR path check off`);
      families.clear();
    }
    const iface = c.interface;
    const acceptLocal = (this.readSysctl('net/ipv4/conf/all/accept_local') === '1') || (this.readSysctl(`net/ipv4/conf/${iface}/accept_local`) === '1');
    if (families.has(4) && !acceptLocal) {
      let fixed = false;
      if (c.sysctl.manage) {
        try {
          writeFileSync(join(this.o.procSys ?? '/proc/sys', `net/ipv4/conf/${iface}/accept_local`), '1\n');
          fixed = true;
          this.o.log.info({ interface: iface }, 'set net.ipv4.conf.IFACE.accept_local=1 for the DR path check');
        } catch (err) {
          problems.push(`cannot set net.ipv4.conf.${iface}.accept_local=1 (${(err as Error).message})`);
        }
      }
      if (!fixed) {
        problems.push(`IPv4 DR path check off: net.ipv4.conf.all.accept_local (or .${iface}.) must be 1, or this host drops the nodes' answers, which come from a VIP it holds as VRRP master (set it, or sysctl.manage: true)`);
        families.delete(4);
      }
    }
    const sources: { 4?: string; 6?: string } = {};
    const addrs = networkInterfaces()[iface] ?? [];
    for (const a of addrs) {
      const ip = parseIp(a.address);
      if (!ip || a.internal || (ip.family === 6 && a.address.toLowerCase().startsWith('fe80'))) continue;
      if (c.pools.some((p) => p.addresses.some((r) => rangeContains(r, ip.family, ip.value)))) continue;
      if (sources[ip.family] === undefined) sources[ip.family] = a.address;
    }
    for (const f of [4, 6] as const) {
      if (families.has(f) && sources[f] === undefined) families.delete(f);
    }
    if (families.size === 0 && problems.length === 0) problems.push(`DR path check off: ${iface} has no address outside the pools to send probes from`);
    this.sources = sources;
    return { families, problems };
  }

  /** Brings slots, fwmark services and the nftables rule in line with the nodes that have DR units. */
  async sync(lanes: ReadonlyMap<string, DrLane>): Promise<DrSyncResult> {
    const c = this.o.config();
    const d = c.healthCheck.drPath;
    const pre = this.preflight();
    const problems = [...pre.problems];
    const families = new Set(pre.families);

    // Slots: kept for nodes that stay, freed for nodes that left, new nodes take the lowest free one.
    const max = this.maxSlots;
    const slots: Record<string, number> = {};
    const used = new Set<number>();
    for (const [node, slot] of Object.entries(this.record.slots)) {
      if (lanes.has(node) && slot < max && !used.has(slot)) {
        slots[node] = slot;
        used.add(slot);
      }
    }
    let free = 0;
    let unslotted = 0;
    for (const node of [...lanes.keys()].sort()) {
      if (slots[node] !== undefined) continue;
      while (used.has(free)) free++;
      if (free >= max) {
        unslotted++;
        continue;
      }
      slots[node] = free;
      used.add(free);
    }
    if (unslotted > 0) problems.push(`DR path check covers ${lanes.size - unslotted} of ${lanes.size} nodes: healthCheck.drPath.sourcePorts holds ${max} × probesPerNode ports`);

    // Desired fwmark services: MARK/FAMILY → node address.
    const want = new Map<string, { mark: number; family: Family; address: string }>();
    for (const [node, slot] of Object.entries(slots)) {
      const lane = lanes.get(node)!;
      for (const f of [4, 6] as const) {
        const address = lane.addresses[f];
        if (address) want.set(`${d.fwmarkBase + slot}/${f}`, { mark: d.fwmarkBase + slot, family: f, address });
      }
    }
    const owned = new Set(this.record.services);
    const ops: IpvsOp[] = [];
    const kernel = await this.client.services();
    const have = new Map<string, { mark: number; family: Family }>();
    const lo = d.fwmarkBase;
    const hi = d.fwmarkBase + max - 1;
    let foreign = 0;
    for (const s of kernel) {
      if (!s.fwmark) continue;
      const key = `${s.fwmark}/${s.family}`;
      if (owned.has(key)) {
        have.set(key, { mark: s.fwmark, family: s.family });
      } else if (s.fwmark >= lo && s.fwmark <= hi && want.has(key)) {
        foreign++;
        want.delete(key);
      }
    }
    if (foreign > 0) problems.push(`${foreign} fwmark services in healthCheck.drPath's mark range ${lo}-${hi} were not created by ipvs-lb; those nodes get no DR path check (choose another fwmarkBase)`);
    for (const [key, h] of have) {
      const w = want.get(key);
      const dests = await this.client.destinations({ fwmark: h.mark, family: h.family });
      if (!w) {
        ops.push({ op: 'delete-service', service: { fwmark: h.mark, family: h.family } });
        continue;
      }
      if (dests.length === 1 && dests[0]!.address === w.address && dests[0]!.forwarding === 'dr') continue;
      for (const x of dests) ops.push({ op: 'delete-dest', service: { fwmark: h.mark, family: h.family }, dest: { address: x.address, port: x.port } });
      ops.push({ op: 'add-dest', service: { fwmark: h.mark, family: h.family }, dest: { address: w.address, port: 0, weight: 1, forwarding: 'dr' } });
    }
    for (const [key, w] of want) {
      if (have.has(key)) continue;
      ops.push({ op: 'add-service', service: { fwmark: w.mark, family: w.family, scheduler: SCHEDULER } });
      ops.push({ op: 'add-dest', service: { fwmark: w.mark, family: w.family }, dest: { address: w.address, port: 0, weight: 1, forwarding: 'dr' } });
    }
    if (ops.length > 0) {
      // Recorded before the kernel write, so a crash in between never leaves a service we do not know.
      this.record = { slots, services: [...new Set([...this.record.services, ...want.keys()])] };
      this.save();
      const results = await this.client.apply(ops);
      const failed = results.filter((r) => r.error);
      if (failed.length > 0) problems.push(`DR path check: ${failed.length} IPVS fwmark operations failed: ${failed.slice(0, 3).map((r) => r.error!.message).join('; ')}`);
    }
    // What failed to be created stays recorded: the next sync finds it missing and adds it again.
    this.record = { slots, services: [...want.keys()] };
    this.save();

    const marks: MarkPlan = { ports: d.sourcePorts, probesPerNode: d.probesPerNode, fwmarkBase: d.fwmarkBase, slots: Object.values(slots), ranges: c.pools.flatMap((p) => p.addresses) };
    for (const [f, err] of await this.applyMarks(marks)) {
      problems.push(`${f === 0 ? 'DR path check off' : `IPv${f} DR path check off`}: ${err}`);
      if (f === 0) families.clear();
      else families.delete(f);
    }
    const text2 = problems.join('; ');
    if (text2 !== this.problemText) {
      if (text2) this.o.log.warn({ problems }, 'DR path check limited');
      else this.o.log.info({ nodes: Object.keys(slots).length, families: [...families] }, 'DR path check ready');
      this.problemText = text2;
    }
    this.families = families;
    return { families, problems };
  }

  /** A free source port of the node's block, or undefined (none free, or the node has no slot). */
  acquirePort(node: string): number | undefined {
    const slot = this.record.slots[node];
    if (slot === undefined) return undefined;
    const d = this.o.config().healthCheck.drPath;
    let busy = this.busy.get(node);
    if (!busy) this.busy.set(node, (busy = new Set()));
    // Round-robin through the block, so one (source port, VIP:port) tuple is reused as rarely as possible.
    const first = d.sourcePorts.first + slot * d.probesPerNode;
    const start = this.cursor.get(node) ?? 0;
    for (let i = 0; i < d.probesPerNode; i++) {
      const p = first + ((start + i) % d.probesPerNode);
      if (busy.has(p)) continue;
      busy.add(p);
      this.cursor.set(node, (start + i + 1) % d.probesPerNode);
      return p;
    }
    return undefined;
  }

  releasePort(node: string, port: number): void {
    this.busy.get(node)?.delete(port);
  }

  sourceAddress(family: Family): string | undefined {
    return this.families.has(family) ? this.sources[family] : undefined;
  }

  /**
   * Active connections (TCP: established; UDP and SCTP have no such state, so every entry counts) of the
   * given destinations, by virtual service key and node address. Missing services or destinations count 0.
   */
  async activeConnections(wanted: ReadonlyArray<{ vsKey: string; protocol: string; vip: string; port: number }>): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const w of wanted) {
      const protocol = w.protocol.toLowerCase() as 'tcp' | 'udp' | 'sctp';
      try {
        const dests = await this.client.destinations({ address: w.vip, protocol, port: w.port });
        for (const d of dests) out.set(`${w.vsKey}|${d.address}`, protocol === 'tcp' ? d.activeConns : d.activeConns + d.inactiveConns);
      } catch {
        // The service is gone: nothing to drain.
      }
    }
    return out;
  }

  /** Removes our fwmark services and the nftables table (DR check turned off, or a clean stop). */
  async teardown(): Promise<void> {
    const ops: IpvsOp[] = [];
    for (const key of this.record.services) {
      const [mark, family] = key.split('/').map(Number) as [number, Family];
      ops.push({ op: 'delete-service', service: { fwmark: mark, family } });
    }
    if (ops.length > 0) await this.client.apply(ops);
    this.record = { slots: this.record.slots, services: [] };
    this.save();
    await this.removeMarks();
    this.families = new Set();
  }

  close(): void {
    this.client.close();
  }

  private bin(name: string): string {
    return this.o.binDir ? join(this.o.binDir, name) : name;
  }

  /** Installs the marking rules unless they are already what was last installed; failures by family (0: all). */
  private async applyMarks(plan: MarkPlan): Promise<Map<0 | Family, string>> {
    const failed = new Map<0 | Family, string>();
    const marker = this.o.config().healthCheck.drPath.marker;
    const texts = marker === 'nft' ? [renderNftRules(plan)] : [renderIptablesRules(plan, 4), renderIptablesRules(plan, 6)];
    const key = `${marker}\n${texts.join('')}`;
    // Unchanged and still there: nothing to do. (A firewall reload may have flushed it: then it goes in again.)
    if (key === this.lastNft && (await this.marksPresent(marker))) return failed;
    if (this.lastMarker && this.lastMarker !== marker) await this.removeMarks();
    this.lastMarker = marker;
    const run = async (cmd: string, args: string[], input?: string) => {
      const r = await execa(this.bin(cmd), args, { input, reject: false, timeout: 30_000 });
      return r.exitCode === 0 ? undefined : `${cmd} ${args.join(' ')} failed: ${String(r.stderr || r.message || `exit ${r.exitCode}`).trim().split('\n').slice(0, 4).join(' ')}`;
    };
    if (marker === 'nft') {
      const e = await run('nft', ['-f', '-'], texts[0]);
      if (e) failed.set(0, e);
    } else {
      for (const [i, tool] of (['iptables-legacy', 'ip6tables-legacy'] as const).entries()) {
        const e = (await run(`${tool}-restore`, ['--noflush'], texts[i])) ?? (
          (await run(tool, ['-t', 'mangle', '-C', 'OUTPUT', '-j', IPTABLES_CHAIN])) === undefined ? undefined : await run(tool, ['-t', 'mangle', '-I', 'OUTPUT', '1', '-j', IPTABLES_CHAIN]));
        if (e) failed.set(i === 0 ? 4 : 6, e);
      }
    }
    // A partial failure is retried on the next sync (the key is not remembered).
    if (failed.size === 0) this.lastNft = key;
    return failed;
  }

  private async marksPresent(marker: string): Promise<boolean> {
    const ok = async (cmd: string, args: string[]) => (await execa(this.bin(cmd), args, { reject: false, timeout: 30_000 })).exitCode === 0;
    if (marker === 'nft') return ok('nft', ['list', 'chain', 'inet', NFT_TABLE, 'probe_marks']);
    return (await ok('iptables-legacy', ['-t', 'mangle', '-C', 'OUTPUT', '-j', IPTABLES_CHAIN])) && ok('ip6tables-legacy', ['-t', 'mangle', '-C', 'OUTPUT', '-j', IPTABLES_CHAIN]);
  }

  private async removeMarks(): Promise<void> {
    const marker = this.lastMarker ?? this.o.config().healthCheck.drPath.marker;
    const quiet = (cmd: string, args: string[], input?: string) => execa(this.bin(cmd), args, { input, reject: false, timeout: 30_000 });
    if (marker === 'nft') await quiet('nft', ['-f', '-'], NFT_REMOVE);
    else {
      for (const tool of ['iptables-legacy', 'ip6tables-legacy']) {
        await quiet(tool, ['-t', 'mangle', '-D', 'OUTPUT', '-j', IPTABLES_CHAIN]);
        await quiet(tool, ['-t', 'mangle', '-F', IPTABLES_CHAIN]);
        await quiet(tool, ['-t', 'mangle', '-X', IPTABLES_CHAIN]);
      }
    }
    this.lastNft = undefined;
    this.lastMarker = undefined;
  }
}
