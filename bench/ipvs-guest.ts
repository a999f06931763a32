// The measuring half of `npm run bench -- ipvs`: runs where the IPVS kernel is (the lab guest, or a real LB
// host), one table size per process, inside a network namespace made for it (and two more for the baselines),
// so every step starts from an empty table and touches nothing else.
// Usage: node dist/bench/ipvs-guest.js '{"services":10000,"dests":10,"scheduler":"rr","perRuleSample":200,
//                                        "restoreNs":"NS2","perRuleNs":"NS3"}'
// Prints one JSON line. In this order:
//   1. ipvs-lb: the Reconciler (IpvsClient underneath) programs S services × D real servers from empty;
//   2. one more Service the daemon's way, nine times (the median counts): DesiredModel recomputes that
//      Service alone and the Reconciler gets a patch; then the same with a whole-state rebuild (what a Node
//      change costs);
//   3. a no-op resync (reads the whole table, diffs, writes nothing), three no-op verifications (the daemon's
//      rolling check between resyncs: the next 100 services re-read) and a no-op update pass;
//   4. the same table with one `ipvsadm -R` (the C tool's bulk path), in the fresh namespace restoreNs;
//   5. one `ipvsadm` process per rule for a sample of rules, extrapolated to the table (the seed controller's
//      way), in the fresh namespace perRuleNs.
// Why fresh namespaces for the baselines: IPVS keeps deleted real servers in a per-namespace trash for about
// two minutes and scans it on every destination add, so a table programmed right after another was deleted
// in the same namespace runs many times slower (measured: 2,000 × 50 in 24 s on an empty trash, 131 s after
// deleting 100,000 destinations). Each step gets the same start: an empty table and an empty trash.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { V1Node, V1Service } from '@kubernetes/client-node';
import { parseConfig } from '../src/config/schema.js';
import { IpvsClient, type IpvsOp } from '../src/ipvs/index.js';
import { parseProcIpvs, ProcReuse, readProcIpvs } from '../src/ipvs/procfs.js';
import type { AllocatedAddress, ModelInputs } from '../src/model/desired.js';
import { DesiredModel, type ServiceSource } from '../src/model/incremental.js';
import type { DesiredVirtualService } from '../src/model/types.js';
import { changedServices, diff, toKernelService } from '../src/reconcile/diff.js';
import { OwnedServices } from '../src/reconcile/ownership.js';
import { Reconciler, type PassReport } from '../src/reconcile/reconciler.js';
import { createLogger } from '../src/util/log.js';

export interface GuestOptions {
  services: number;
  /** Real servers per service. */
  dests: number;
  scheduler: string;
  /** Rules run as one ipvsadm process each, then extrapolated. */
  perRuleSample: number;
  /** Empty network namespaces (with the real servers' subnet routable) for the two baselines. */
  restoreNs: string;
  perRuleNs: string;
}

/** One-more-Service passes measured (each adds one): the first ones run code the emulated guest has not
 * compiled yet (measured: 28 ms, 7 ms, then 4 ms), a daemon pays that once; the median counts. */
const INCREMENTS = 9;

/** Services per verification pass: the daemon's default (reconcile.verifyServices), every 1 s by default. */
const VERIFY_SERVICES = 100;
const VERIFY_INTERVAL_S = 1;

const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

/** VIP number i in 198.18.0.0/15 (RFC 2544's benchmark range: documentation ranges are too small). */
export function vipOf(i: number): string {
  const v = (198 << 24) + (18 << 16) + i + 1;
  return `${(v >>> 24) & 255}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

/** Real server d on the LAN (198.51.100.10 and up). */
export const nodeOf = (d: number): string => `198.51.100.${10 + d}`;

/** The desired state of an S × D table as the model would produce it: new objects on every call, and one
 * real-server list shared by every service (the model shares it when the real servers cannot differ:
 * externalTrafficPolicy Cluster, same family and port). */
export function benchTable(services: number, dests: number, scheduler: string, first = 0): DesiredVirtualService[] {
  const out: DesiredVirtualService[] = [];
  const realServers = Array.from({ length: dests }, (_, d) => ({ address: nodeOf(d), port: 80, weight: 1, node: `node-${d}`, state: 'serving' as const }));
  for (let i = first; i < first + services; i++) {
    const vip = vipOf(i);
    out.push({
      key: `TCP/${vip}:80`, vip, family: 4, protocol: 'TCP', port: 80, scheduler: scheduler as DesiredVirtualService['scheduler'],
      schedulerFlags: scheduler === 'mh' ? ['mh-fallback', 'mh-port'] : [], persistenceTimeoutSeconds: undefined, forwarding: 'dr',
      service: `bench/svc-${i}`, serviceUid: `uid-${i}`, pool: 'bench', vrrpGroup: undefined,
      realServers,
    });
  }
  return out;
}

/** The model's inputs for the same table, as the daemon would hold them (Services with their addresses,
 * one Node per real server), growing by one Service per add(). */
export class BenchWorld {
  readonly model = new DesiredModel();
  private readonly services: V1Service[] = [];
  private readonly nodes: V1Node[];
  private readonly allocations = new Map<string, AllocatedAddress[]>();
  private readonly byId = new Map<string, V1Service>();
  private readonly vipSet = new Set<string>();
  private readonly config: ModelInputs['config'];
  readonly source: ServiceSource;

  constructor(services: number, dests: number, scheduler: string) {
    const parsed = parseConfig({ interface: 'bench0', vrrp: { enabled: false }, scheduler, forwarding: 'dr', pools: [{ name: 'bench', addresses: ['198.18.0.0/15'] }] });
    if (!parsed.ok) throw new Error(`bench config: ${parsed.problems.join('; ')}`);
    this.config = parsed.config;
    this.nodes = Array.from({ length: dests }, (_, d) => ({
      metadata: { name: `node-${d}` },
      status: { addresses: [{ type: 'InternalIP', address: nodeOf(d) }], conditions: [{ type: 'Ready', status: 'True' }] },
    }));
    for (let i = 0; i < services; i++) this.add();
    this.source = { service: (id) => this.byId.get(id), slices: () => [], allocations: (uid) => this.allocations.get(uid) };
  }

  get count(): number {
    return this.services.length;
  }

  get vips(): ReadonlySet<string> {
    return this.vipSet;
  }

  /** One more Service with its address; returns its `namespace/name`. */
  add(): string {
    const i = this.services.length;
    const svc: V1Service = {
      metadata: { name: `svc-${i}`, namespace: 'bench', uid: `uid-${i}`, creationTimestamp: new Date(1_700_000_000_000 + i * 1000) },
      spec: { type: 'LoadBalancer', ports: [{ port: 80, protocol: 'TCP', nodePort: 30080 }] },
    };
    this.services.push(svc);
    this.byId.set(`bench/svc-${i}`, svc);
    this.allocations.set(`uid-${i}`, [{ address: vipOf(i), pool: 'bench' }]);
    this.vipSet.add(vipOf(i));
    return `bench/svc-${i}`;
  }

  inputs(): ModelInputs {
    return { services: this.services, nodes: this.nodes, endpointSlices: [], allocations: this.allocations, config: this.config, now: Date.now() };
  }
}

/** ipvsadm's rules for the same table (`-R` input, or one argv per rule). */
export function ipvsadmRules(table: readonly DesiredVirtualService[]): string[][] {
  const rules: string[][] = [];
  for (const v of table) {
    const flags = v.schedulerFlags.length ? ['-b', v.schedulerFlags.join(',')] : [];
    rules.push(['-A', '-t', `${v.vip}:${v.port}`, '-s', v.scheduler, ...flags]);
    for (const r of v.realServers) rules.push(['-a', '-t', `${v.vip}:${v.port}`, '-r', `${r.address}:${r.port}`, '-g', '-w', String(r.weight)]);
  }
  return rules;
}

/** CPU time of the pure part of a no-op pass (the desired table compared with the remembered kernel table),
 * best of `rounds`: run on the guest and on the host, it says how much slower the guest runs this code. */
export function pureNoopDiffMs(services: number, dests: number, scheduler: string, rounds = 5): number {
  const desired = benchTable(services, dests, scheduler);
  const kernel = new Map(benchTable(services, dests, scheduler).map((v) => [v.key, toKernelService(v)]));
  let best = Infinity;
  for (let k = 0; k < rounds; k++) {
    const c0 = process.cpuUsage();
    const { changed, keys } = changedServices(desired, kernel);
    const ops = diff({ desired: changed, desiredKeys: keys, actual: kernel, owned: () => true });
    const c = process.cpuUsage(c0);
    best = Math.min(best, (c.user + c.system) / 1000);
    if (ops.length !== 0) throw new Error('pure no-op diff found operations');
  }
  return best;
}

async function clear(client: IpvsClient): Promise<void> {
  const services = await client.services({ stats: false });
  const ops: IpvsOp[] = services.map((s) => ({ op: 'delete-service', service: s.fwmark ? { fwmark: s.fwmark, family: s.family } : { address: s.address!, protocol: s.protocol!, port: s.port } }));
  const r = await client.apply(ops);
  const failed = r.filter((x) => x.error);
  if (failed.length > 0) throw new Error(`clearing the table: ${failed[0]!.error!.message}`);
}

async function count(client: IpvsClient): Promise<{ services: number; dests: number }> {
  const t = await client.table();
  return { services: t.length, dests: t.reduce((n, e) => n + e.destinations.length, 0) };
}

/** Wall time of a command in another namespace, less the cost of entering it (`ip netns exec NS true`). */
function timedInNs(ns: string, argv: string[], input?: string): number {
  let overhead = Infinity;
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    execFileSync('ip', ['netns', 'exec', ns, 'true']);
    overhead = Math.min(overhead, performance.now() - t);
  }
  const t0 = performance.now();
  const r = spawnSync('ip', ['netns', 'exec', ns, ...argv], { input, stdio: [input === undefined ? 'ignore' : 'pipe', 'ignore', 'pipe'], maxBuffer: 1 << 20 });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} in ${ns} failed (${r.status}): ${r.stderr?.toString().slice(-1000)}`);
  return Math.max(0, ms - overhead);
}

/** Services and real servers in another namespace's table, by ipvsadm's own dump (untimed). */
function countInNs(ns: string): { services: number; dests: number } {
  const lines = execFileSync('ip', ['netns', 'exec', ns, 'ipvsadm', '-Sn'], { maxBuffer: 256 << 20 }).toString().split('\n');
  return { services: lines.filter((l) => l.startsWith('-A ')).length, dests: lines.filter((l) => l.startsWith('-a ')).length };
}

async function measure(client: IpvsClient, o: GuestOptions, dir: string): Promise<Record<string, unknown>> {
  const { services, dests } = o;
  const table = benchTable(services, dests, o.scheduler);
  const rules = services * (1 + dests);
  const log = createLogger('silent');
  const owned = new OwnedServices(join(dir, `owned-${services}x${dests}.json`));
  // A coalescing window longer than the run: every pass here is started explicitly.
  const rec = new Reconciler({ client, owned, log, coalesceMs: 3_600_000 });
  const vips = table.map((v) => v.vip);

  // 1. From empty.
  const c0 = { ...client.counters };
  let t0 = performance.now();
  rec.update(table, vips);
  const first = await rec.reconcileNow({ read: true });
  const oursMs = performance.now() - t0;
  if (first.errors > 0) throw new Error(`programming failed: ${first.errorMessages[0]}`);
  const sendmsg = client.counters.sendmsg - c0.sendmsg;
  const programmed = await count(client);
  if (programmed.services !== services || programmed.dests !== services * dests) throw new Error(`kernel holds ${JSON.stringify(programmed)} after programming`);

  // 2. One more Service, the daemon's way (src/daemon/desired-feed.ts): the Service and its address join the
  // model's inputs, DesiredModel recomputes that Service alone, and the Reconciler gets the patch. Timed from
  // the change to the kernel's answer, INCREMENTS times (one more Service each); incremental_ms is the median.
  const world = new BenchWorld(services, dests, o.scheduler);
  let t1 = performance.now();
  const rebuilt = world.model.rebuild(world.inputs());
  const modelRebuildMs = performance.now() - t1;
  const programmedKeys = new Set(table.map((v) => v.key));
  if (rebuilt.virtualServices.length !== services || rebuilt.virtualServices.some((v) => !programmedKeys.has(v.key))) throw new Error('the model does not compute the programmed table');
  rec.update(rebuilt.virtualServices, world.vips);
  const adopt = await rec.reconcileNow({ read: false });
  if (adopt.operations !== 0) throw new Error(`the model's table differs from the programmed one: ${JSON.stringify(adopt.byKind)}`);
  const incs: Array<{ ms: number; modelMs: number; r: PassReport }> = [];
  for (let k = 0; k < INCREMENTS; k++) {
    const id = world.add();
    t0 = performance.now();
    const delta = world.model.updateServices([id], world.source);
    const modelMs = performance.now() - t0;
    rec.patch({ set: delta.set, remove: delta.remove }, world.vips);
    const r = await rec.reconcileNow({ read: false });
    incs.push({ ms: performance.now() - t0, modelMs, r });
    if (delta.set.length !== 1 || r.operations !== 1 + dests || r.errors > 0 || r.kernelRead) throw new Error(`incremental pass: ${JSON.stringify({ delta: delta.set.length, ...r })}`);
  }
  const inc = [...incs].sort((x, y) => x.ms - y.ms)[Math.floor(INCREMENTS / 2)]!;
  // The same change when something every Service depends on changed too (a Node): the whole state is
  // rebuilt and handed over (update()), and the Reconciler skips the unchanged entries by a lookup each.
  const rebuilds: Array<{ ms: number; r: PassReport }> = [];
  for (let k = 0; k < INCREMENTS; k++) {
    world.add();
    t0 = performance.now();
    const d = world.model.rebuild(world.inputs());
    rec.update(d.virtualServices, world.vips);
    const r = await rec.reconcileNow({ read: false });
    rebuilds.push({ ms: performance.now() - t0, r });
    if (r.operations !== 1 + dests || r.errors > 0 || r.kernelRead) throw new Error(`rebuild pass: ${JSON.stringify(r)}`);
  }
  const rebuild = [...rebuilds].sort((x, y) => x.ms - y.ms)[Math.floor(INCREMENTS / 2)]!;
  const total = world.count;

  // 3. No-op resync (reads the kernel) and no-op update pass (remembered table).
  // Three times, the median counts; the CPU split says how much of it is the kernel handing the table over
  // (system time: netlink dump and /proc/net/ip_vs generation) and how much is ipvs-lb's own code.
  const resyncs: Array<{ ms: number; r: PassReport; userMs: number; systemMs: number; messages: number }> = [];
  for (let k = 0; k < 3; k++) {
    const c1 = { ...client.counters };
    const cpu0 = process.cpuUsage();
    t0 = performance.now();
    const r = await rec.reconcileNow({ read: true });
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    resyncs.push({ ms, r, userMs: cpu.user / 1000, systemMs: cpu.system / 1000, messages: client.counters.messagesSent - c1.messagesSent });
  }
  const resync = [...resyncs].sort((x, y) => x.ms - y.ms)[1]!;
  const noop = resync.r;
  const noopMs = resync.ms;
  const noopMessages = resync.messages;
  const noopWrites = Math.max(...resyncs.map((x) => x.r.operations));
  // Where the read goes: its two kernel reads alone, as table() makes them (the netlink service dump without
  // counters; /proc/net/ip_vs read, then parsed: afresh, as the first resync after a start does, and with the
  // last parse kept, as every later one does), three times each, medians. The rest of noop_read_ms is
  // matching the two and keeping the remembered entries.
  const median3 = async (fn: () => unknown): Promise<number> => {
    const ms: number[] = [];
    for (let k = 0; k < 3; k++) {
      const t = performance.now();
      await fn();
      ms.push(performance.now() - t);
    }
    return ms.sort((a, b) => a - b)[1]!;
  };
  const readServicesMs = await median3(() => client.services({ stats: false }));
  let procText = '';
  const readProcMs = await median3(() => (procText = readProcIpvs()));
  const parseProcMs = await median3(() => parseProcIpvs(procText));
  const kept = new ProcReuse();
  parseProcIpvs(procText, kept);
  const parseProcKeptMs = await median3(() => parseProcIpvs(procText, kept));
  const procBytes = procText.length;
  procText = '';
  // The rolling verification between resyncs (reconcile.verifyIntervalMs), the daemon's default slice: three
  // passes, each re-reading the next VERIFY_SERVICES services from the kernel; the median counts.
  const verifies: Array<{ ms: number; r: PassReport }> = [];
  for (let k = 0; k < 3; k++) {
    t0 = performance.now();
    const r = await rec.verifyNow(VERIFY_SERVICES);
    verifies.push({ ms: performance.now() - t0, r });
    if (r.kernelRead || r.verified !== Math.min(VERIFY_SERVICES, total)) throw new Error(`verification pass: ${JSON.stringify(r)}`);
  }
  const verify = [...verifies].sort((x, y) => x.ms - y.ms)[1]!;
  const verifyWrites = Math.max(...verifies.map((x) => x.r.operations + x.r.drifted.length));
  t1 = performance.now();
  const table3 = world.model.rebuild(world.inputs()).virtualServices;
  const noopRebuildMs = performance.now() - t1;
  t0 = performance.now();
  rec.update(table3, world.vips);
  const noopPass = await rec.reconcileNow({ read: false });
  const noopPassMs = performance.now() - t0;
  rec.stop();
  const pureMs = pureNoopDiffMs(services, dests, o.scheduler);

  t0 = performance.now();
  await clear(client);
  const deleteMs = performance.now() - t0;

  // 4. ipvsadm -R, same table, same kernel, a fresh namespace. ipvsadm -R stops with an error at the first
  // rule the kernel refuses, so its exit status says the whole table went in.
  const argvs = ipvsadmRules(table);
  const restoreMs = timedInNs(o.restoreNs, ['ipvsadm', '-R'], `${argvs.map((a) => a.join(' ')).join('\n')}\n`);
  const restored = countInNs(o.restoreNs);
  if (restored.services !== services || restored.dests !== services * dests) throw new Error(`ipvsadm -R left ${JSON.stringify(restored)} in ${o.restoreNs}`);

  // 5. One process per rule, the seed controller's way: a sample, run by a shell in a fresh namespace (one
  // fork and exec per rule, as os.system does, without its extra shell), extrapolated.
  const sample = argvs.slice(0, Math.min(o.perRuleSample, argvs.length));
  const script = join(dir, 'per-rule.sh');
  writeFileSync(script, `set -e\n${sample.map((a) => `ipvsadm ${a.join(' ')}`).join('\n')}\n`);
  const perRuleEachMs = timedInNs(o.perRuleNs, ['sh', script]) / sample.length;
  const perRuleTotalMs = perRuleEachMs * rules;

  return {
    services, real_servers: dests, rules,
    ours_ms: round(oursMs), rules_per_s: Math.round(rules / (oursMs / 1000)), sendmsg, syscalls_per_rule: round(sendmsg / rules, 4),
    restore_ms: round(restoreMs), restore_rules_per_s: Math.round(rules / (restoreMs / 1000)), ratio_vs_restore: round(restoreMs / oursMs, 2),
    per_rule_each_ms: round(perRuleEachMs, 2), per_rule_sampled: sample.length, per_rule_extrapolated_s: round(perRuleTotalMs / 1000),
    ratio_vs_per_rule: round(perRuleTotalMs / oursMs, 0),
    incremental_ms: round(inc.ms, 2), incremental_first_ms: round(incs[0]!.ms, 2), incremental_min_ms: round(Math.min(...incs.map((x) => x.ms)), 2), incremental_max_ms: round(Math.max(...incs.map((x) => x.ms)), 2), incremental_model_ms: round(inc.modelMs, 2), incremental_diff_ms: inc.r.diffMs, incremental_apply_ms: inc.r.applyMs,
    incremental_operations: inc.r.operations, incremental_compared: inc.r.compared,
    incremental_rebuild_ms: round(rebuild.ms, 1), incremental_rebuild_diff_ms: rebuild.r.diffMs, incremental_rebuild_compared: rebuild.r.compared,
    model_rebuild_ms: round(modelRebuildMs, 1), model_rebuild_again_ms: round(noopRebuildMs, 1), services_total: total,
    noop_resync_ms: round(noopMs, 1), noop_read_ms: round(noop.readMs, 1), noop_diff_ms: round(noop.durationMs - noop.readMs, 1), noop_read_us_per_dest: round((noop.readMs * 1000) / (rules - services), 2),
    noop_read_services_ms: round(readServicesMs, 1), noop_read_proc_ms: round(readProcMs, 1), noop_parse_proc_ms: round(parseProcMs, 1), noop_parse_proc_kept_ms: round(parseProcKeptMs, 1), noop_proc_bytes: procBytes,
    noop_kernel_cpu_ms: round(resync.systemMs, 1), noop_user_cpu_ms: round(resync.userMs, 1),
    noop_writes: noopWrites, noop_messages_sent: noopMessages,
    noop_verify_ms: round(verify.ms, 1), noop_verify_services: verify.r.verified, noop_verify_us_per_service: round((verify.ms * 1000) / verify.r.verified, 0), noop_verify_writes: verifyWrites,
    verify_coverage_s: Math.ceil(total / VERIFY_SERVICES) * VERIFY_INTERVAL_S,
    noop_pass_ms: round(noopPassMs, 2), noop_pass_writes: noopPass.operations, noop_pass_compared: noopPass.compared, noop_pass_diff_ms: noopPass.diffMs,
    pure_noop_diff_ms: round(pureMs, 2),
    delete_all_ms: round(deleteMs),
  };
}

export async function runGuest(o: GuestOptions): Promise<Record<string, unknown>> {
  const client = await IpvsClient.open();
  const dir = mkdtempSync(join(tmpdir(), 'ipvs-lb-bench-'));
  try {
    if ((await client.services({ stats: false })).length > 0) throw new Error('the benchmark needs an empty IPVS table (run it in a network namespace of its own)');
    const r = await measure(client, o, dir);
    return { kernel: execFileSync('uname', ['-r']).toString().trim(), table_read: client.procProblem ? `netlink (${client.procProblem})` : 'netlink services + /proc/net/ip_vs', ...r };
  } finally {
    client.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1]?.endsWith('ipvs-guest.js')) {
  const o = JSON.parse(process.argv[2] ?? '{}') as GuestOptions;
  const r = await runGuest(o);
  process.stdout.write(`${JSON.stringify(r)}\n`);
}
