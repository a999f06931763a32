// Kernel programming: ipvs-lb's IpvsClient + Reconciler against `ipvsadm -R` and against one ipvsadm process
// per rule, on the same kernel in the same run (bench/ipvs-guest.ts does the measuring, one size per process,
// each step in a fresh network namespace). Where:
// - on a host whose kernel has IPVS (a real LB host; or IPVS_LB_BENCH_TARGET=host), as root, in network
//   namespaces of its own (`ip netns add ipvslbNNNs0a` ..., deleted afterwards), so the host's own IPVS table
//   is never seen or touched;
// - otherwise in the lab micro-VM, under QEMU and then under UML where it boots (IPVS_LB_LAB_BACKEND=qemu, =uml
//   or a comma list to choose): QEMU's software CPU slows every instruction, the kernel's and ours, 5-15×;
//   UML runs both at native speed but every syscall and page fault costs hundreds of times a real one
//   (shared/vm-lab.md). A real LB host is faster than either on every figure; the ratios against ipvsadm,
//   which makes two syscalls per rule, are fairer under QEMU.
// Sizes: IPVS_LB_BENCH_SIZES="10000x10,10000x50" (the default, the sizes; --quick: "1000x10,200x50"). IPVS_LB_BENCH_SCHEDULER (default rr: the table-programming
// cost of the user-space tools, not of a scheduler's per-destination rebuild; mh works too) and
// IPVS_LB_BENCH_PER_RULE (rules run one process each, default 200).
// The guest's CPU is emulated, so the same pure diff is also timed on this host: js_slowdown says how much
// slower the guest runs ipvs-lb's own code, to read the guest's milliseconds against a real host.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startVm, umlProblem, type Backend } from '../lab/vm/index.js';
import { defineBenchmark } from './harness.js';
import { pureNoopDiffMs, type GuestOptions } from './ipvs-guest.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const guestJs = join(here, 'ipvs-guest.js');

/** Makes an empty network namespace whose dummy link routes the real servers' subnet (IPVS refuses a
 * destination it cannot route as unicast). */
const makeNs = (ns: string) => `ip netns add ${ns} && ip -n ${ns} link set lo up && ip -n ${ns} link add bench0 type dummy && ip -n ${ns} link set bench0 up && ip -n ${ns} addr add 198.51.100.1/24 dev bench0`;
export function parseSizes(text: string): Array<[number, number]> {
  return text.split(',').map((part) => {
    const m = /^\s*(\d+)x(\d+)\s*$/.exec(part);
    const s = m ? Number(m[1]) : NaN;
    const d = m ? Number(m[2]) : NaN;
    if (!m || s < 1 || s > 100_000 || d < 1 || d > 200) throw new Error(`IPVS_LB_BENCH_SIZES: ${JSON.stringify(part)} must be SERVICESxREALSERVERS (1-100000 x 1-200)`);
    return [s, d];
  });
}

function positiveInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name}: must be a positive integer (got ${JSON.stringify(raw)})`);
  return v;
}

/** This host has IPVS (a real LB host) when the module is loaded or loads. */
function hostHasIpvs(): boolean {
  if (process.env.IPVS_LB_BENCH_TARGET === 'lab') return false;
  if (process.env.IPVS_LB_BENCH_TARGET === 'host') return true;
  if (existsSync('/proc/net/ip_vs')) return true;
  return spawnSync('modprobe', ['-q', 'ip_vs'], { stdio: 'ignore' }).status === 0 && existsSync('/proc/net/ip_vs');
}

function parseGuest(stdout: string, stderr: string): Record<string, unknown> {
  const line = stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    throw new Error(`benchmark guest printed no result:\n${stdout.slice(-2000)}\n${stderr.slice(-4000)}`);
  }
}

/** Runs a command where the kernel is; `ns` runs it in that network namespace. */
type Runner = (cmd: string[], opts?: { ns?: string; timeoutMs?: number }) => Promise<{ code: number; stdout: string; stderr: string }>;

interface Sized {
  services: number;
  dests: number;
}

/** One size per guest process, each in namespaces of its own that are deleted afterwards. */
async function measureAll(run: Runner, sizes: Sized[], o: Omit<GuestOptions, 'services' | 'dests' | 'restoreNs' | 'perRuleNs'>, modules: string[]): Promise<Record<string, unknown>[]> {
  const tag = `ipvslb${process.pid % 100000}`;
  const load = await run(['modprobe', '-a', ...modules, 'dummy']);
  if (load.code !== 0) throw new Error(`modprobe ${modules.join(' ')} dummy: ${load.stderr}`);
  const out: Record<string, unknown>[] = [];
  for (const [i, size] of sizes.entries()) {
    const ns = [`${tag}s${i}a`, `${tag}s${i}b`, `${tag}s${i}c`];
    const made = await run(['sh', '-c', ns.map(makeNs).join(' && ')]);
    if (made.code !== 0) throw new Error(`making the benchmark's network namespaces: ${made.stderr}`);
    try {
      const g: GuestOptions = { ...o, ...size, restoreNs: ns[1]!, perRuleNs: ns[2]! };
      const r = await run(['node', '--max-old-space-size=1024', guestJs, JSON.stringify(g)], { ns: ns[0], timeoutMs: 3_600_000 });
      if (r.code !== 0) throw new Error(`benchmark guest failed (${r.code}):\n${r.stderr.slice(-4000)}`);
      out.push(parseGuest(r.stdout, r.stderr));
    } finally {
      await run(['sh', '-c', ns.map((n) => `ip netns del ${n}`).join('; ')]);
    }
  }
  return out;
}

const hostRunner: Runner = async (cmd, opts = {}) => {
  const argv = opts.ns ? ['ip', 'netns', 'exec', opts.ns, ...cmd] : cmd;
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', maxBuffer: 16 << 20, timeout: opts.timeoutMs ?? 600_000 });
  return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? String(r.error ?? '') };
};

/** The lab backends to measure on: IPVS_LB_LAB_BACKEND (one, or a comma list), else QEMU and, where it
 * boots, UML. Each emulator inflates a different cost (TCG all CPU work, UML every syscall and page fault),
 * so both are measured in the same run and reported side by side. */
function labBackends(): Backend[] {
  const raw = process.env.IPVS_LB_LAB_BACKEND;
  if (raw === undefined || raw === '') return umlProblem() === undefined ? ['qemu', 'uml'] : ['qemu'];
  const list = raw.split(',').map((b) => b.trim());
  for (const b of list) if (b !== 'qemu' && b !== 'uml') throw new Error(`IPVS_LB_LAB_BACKEND: ${JSON.stringify(b)} is not one of qemu, uml (a comma list measures on each)`);
  return [...new Set(list)] as Backend[];
}

/** One backend's figures: the goal figures from the first size (10,000 services by default), every size under
 * `by_size`. */
function summarize(sizes: Array<Record<string, number>>, scheduler: string): Record<string, unknown> {
  const first = sizes[0] as unknown as Record<string, unknown>;
  const guestKernel = first.kernel;
  const guestTableRead = first.table_read;
  // The same pure code on this host's CPU, for reading emulated milliseconds.
  for (const s of sizes) {
    const hostMs = pureNoopDiffMs(s.services!, s.real_servers!, scheduler);
    s.host_pure_noop_diff_ms = Math.round(hostMs * 100) / 100;
    s.js_slowdown = hostMs > 0 ? Math.round((s.pure_noop_diff_ms! / hostMs) * 10) / 10 : 0;
    delete (s as Record<string, unknown>).kernel;
    delete (s as Record<string, unknown>).table_read;
  }
  const main = sizes[0]!;
  const worst = (k: string, pick: (a: number, b: number) => number) => sizes.map((s) => s[k]!).reduce((a, b) => pick(a, b));
  return {
    kernel: guestKernel, table_read: guestTableRead,
    sizes: sizes.map((s) => `${s.services}x${s.real_servers}`).join(','),
    rules_per_s: main.rules_per_s, ratio_vs_restore: worst('ratio_vs_restore', Math.min), ratio_vs_per_rule: worst('ratio_vs_per_rule', Math.min),
    incremental_ms: main.incremental_ms, incremental_rebuild_ms: main.incremental_rebuild_ms, noop_resync_ms: main.noop_resync_ms, noop_writes: worst('noop_writes', Math.max),
    noop_verify_ms: main.noop_verify_ms, noop_verify_services: main.noop_verify_services, verify_coverage_s: main.verify_coverage_s, noop_pass_ms: main.noop_pass_ms, noop_read_us_per_dest: main.noop_read_us_per_dest, js_slowdown: main.js_slowdown,
    goals: {
      ratio_vs_restore_ge_1: worst('ratio_vs_restore', Math.min) >= 1,
      ratio_vs_per_rule_ge_100: worst('ratio_vs_per_rule', Math.min) >= 100,
      incremental_lt_5ms: main.incremental_ms! < 5,
      noop_resync_lt_100ms: main.noop_resync_ms! < 100,
      noop_zero_writes: worst('noop_writes', Math.max) === 0,
      // Not the goal (that is the whole-table resync above): the periodic check that runs between.
      noop_verify_lt_100ms: main.noop_verify_ms! < 100,
    },
    by_size: sizes,
    baseline: {
      restore_rules_per_s: main.restore_rules_per_s, per_rule_each_ms: main.per_rule_each_ms, per_rule_sampled: main.per_rule_sampled,
    },
  };
}

export default defineBenchmark({
  name: 'ipvs',
  description: 'programming S services × D real servers: IpvsClient/Reconciler vs ipvsadm -R vs one ipvsadm per rule; one more Service; no-op resync',
  async run({ quick }) {
    const sizeList = parseSizes(process.env.IPVS_LB_BENCH_SIZES ?? (quick ? '1000x10,200x50' : '10000x10,10000x50')).map(([services, dests]) => ({ services, dests }));
    const o = {
      scheduler: process.env.IPVS_LB_BENCH_SCHEDULER ?? 'rr',
      perRuleSample: positiveInt('IPVS_LB_BENCH_PER_RULE', quick ? 50 : 200),
    };
    if (!/^[a-z]{2,8}$/.test(o.scheduler)) throw new Error(`IPVS_LB_BENCH_SCHEDULER: ${JSON.stringify(o.scheduler)} is not a scheduler name`);
    const modules = ['ip_vs', `ip_vs_${o.scheduler}`];
    const host = hostHasIpvs();
    const backends: Array<Backend | 'host'> = host ? ['host'] : labBackends();
    const byBackend: Record<string, Record<string, unknown>> = {};
    for (const backend of backends) {
      let sizes: Array<Record<string, number>>;
      if (backend === 'host') {
        sizes = (await measureAll(hostRunner, sizeList, o, modules)) as Array<Record<string, number>>;
      } else {
        process.stderr.write(`bench ipvs: measuring in the ${backend} lab guest\n`);
        const vm = await startVm({ backend, memoryMb: 1536 });
        try {
          sizes = (await measureAll((cmd, opts) => vm.exec(cmd, opts ?? {}), sizeList, o, modules)) as Array<Record<string, number>>;
        } finally {
          await vm.stop();
        }
      }
      byBackend[backend] = summarize(sizes, o.scheduler);
    }
    const goals = Object.fromEntries(Object.entries(byBackend).map(([b, r]) => [b, r.goals]));
    const baseline = Object.fromEntries(Object.entries(byBackend).map(([b, r]) => [b, r.baseline]));
    for (const r of Object.values(byBackend)) {
      delete r.goals;
      delete r.baseline;
    }
    return { scheduler: o.scheduler, backends: backends.join(','), goals, by_backend: byBackend, baseline };
  },
});
