// The soak loop: draw a step, send its operations while its fault is on, wait until the system settles,
// check every invariant, repeat until the time or operation budget is spent (or a violation stops it).
import { explain } from './explain.js';
import { SoakLab, type FaultRecord } from './fixture.js';
import { describeFault, describeOp, initialGenState, nextStep, type FaultKind, type GenState, type GeneratorOptions, type Op, type OpKind, type Step } from './generator.js';
import { checkInvariants, fingerprint, type CheckResult, type Violation } from './invariants.js';
import type { Observation } from './observation.js';
import { violationLabel } from './report.js';
import { Rng } from './rng.js';
import type { Backend } from '../vm/index.js';

export interface SoakOptions {
  seed: number;
  /** Stop starting new steps after this long (the running step finishes). */
  durationMs: number;
  /** Stop after this many Service operations. */
  maxOps: number;
  generator: GeneratorOptions;
  /** How long a step may take to settle before its last look is judged as it is. */
  settleTimeoutMs: number;
  /** Two identical looks at least this far apart, with every check passing, count as settled. */
  quietMs: number;
  /** Continue after a violation (default: stop at the first, with its context). */
  keepGoing: boolean;
  backend: Backend;
  artifactsDir?: string;
  log: (line: string) => void;
  /** Runs on the live lab after the last step, before it is stopped (the lab test plants a violation). */
  beforeStop?: (lab: SoakLab, plan: GenState['services']) => Promise<void>;
}

export interface ReportedViolation extends Violation {
  step: number;
  ops: string[];
  fault: string | undefined;
  faultNote: string | undefined;
  /** Whether the system had stopped changing when it was judged. */
  settled: boolean;
}

export interface SoakResult {
  seed: number;
  steps: number;
  operations: number;
  operationsByKind: Partial<Record<OpKind, number>>;
  faults: number;
  faultsByKind: Partial<Record<FaultKind, number>>;
  settles: number;
  checksPassed: number;
  violations: ReportedViolation[];
  settleMs: { median: number; max: number };
  durationMs: number;
  logs: string[];
  artifactsDir: string | undefined;
  /** Set when the harness itself could not go on (the lab broke, an operation was refused). */
  aborted: string | undefined;
  /** Times the guest froze for 2 s or more (an overloaded machine), and the longest. */
  stalls: { count: number; longestMs: number };
}

/** HTTP answers that mean the operation took effect (409/404: a retry after an answer lost in an outage). */
function accepted(op: Op, code: number): boolean {
  if (op.kind === 'create') return code === 201 || code === 409;
  if (op.kind === 'delete') return code === 200 || code === 202 || code === 404;
  return code === 200;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const PERMANENT = new Set(['logs.no-unexplained-errors', 'daemon.alive', 'harness.api-matches-plan']);

interface Settled {
  settled: boolean;
  result: CheckResult;
  obs: Observation | undefined;
  ms: number;
  looks: number;
}

export async function runSoak(o: SoakOptions): Promise<SoakResult> {
  const t0 = Date.now();
  const rng = new Rng(o.seed);
  let gen = initialGenState();
  const result: SoakResult = {
    seed: o.seed, steps: 0, operations: 0, operationsByKind: {}, faults: 0, faultsByKind: {}, settles: 0, checksPassed: 0,
    violations: [], settleMs: { median: 0, max: 0 }, durationMs: 0, logs: [], artifactsDir: o.artifactsDir, aborted: undefined,
    stalls: { count: 0, longestMs: 0 },
  };
  const settleTimes: number[] = [];
  const records: FaultRecord[] = [];
  o.log(`soak: seed ${o.seed}, up to ${Math.round(o.durationMs / 1000)} s and ${o.maxOps} operations; replay with --seed ${o.seed}`);
  let lab: SoakLab | undefined;
  try {
    lab = await SoakLab.start({ backend: o.backend, log: o.log, ...(o.artifactsDir ? { artifactsDir: o.artifactsDir } : {}) });
    const l = lab;
    const settle = async (): Promise<Settled> => {
      const start = Date.now();
      let prev: string | undefined;
      let prevAt = 0;
      let lastProgressLog = start;
      let last: Settled = { settled: false, result: { passed: [], violations: [{ check: 'observe', message: 'no observation was made' }] }, obs: undefined, ms: 0, looks: 0 };
      for (let looks = 1; ; looks++) {
        const unexpectedExits = await l.reapUnexpectedExits();
        let obs: Observation | undefined;
        let checks: CheckResult;
        try {
          obs = await l.observe();
          const errors = l.logErrors();
          const stalls = l.stalls();
          checks = checkInvariants(obs, { plan: gen.services, logErrors: errors, explained: (e) => explain(records, e, stalls, undefined, l.slowdown) !== undefined, unexpectedExits });
        } catch (err) {
          checks = { passed: [], violations: [{ check: 'observe', message: (err as Error).message }] };
        }
        const fp = obs ? fingerprint(obs) : undefined;
        const now = Date.now();
        const stable = fp !== undefined && fp === prev && now - prevAt >= o.quietMs;
        last = { settled: stable, result: checks, obs, ms: now - start, looks };
        if (stable && checks.violations.length === 0) return last;
        // An unexplained log line or a dead daemon does not go away by waiting: judge now.
        if (stable && checks.violations.every((v) => PERMANENT.has(v.check))) return last;
        if (fp !== prev) {
          prev = fp;
          prevAt = now;
        }
        if (now - start > o.settleTimeoutMs * l.slowdown) return last;
        // A slow settle says what it still waits for, so a timeout later is not the first word of it.
        if (now - lastProgressLog >= 30_000 && checks.violations.length > 0) {
          lastProgressLog = now;
          o.log(`  still settling after ${((now - start) / 1000).toFixed(0)} s: ${checks.violations.map((v) => `${violationLabel(v)} ${v.message}`).join('; ')}`);
        }
        await sleep(500);
      }
    };

    // The starting point must already be clean.
    const first = await settle();
    result.settles++;
    result.checksPassed += first.result.passed.length;
    if (first.result.violations.length > 0) {
      for (const v of first.result.violations) result.violations.push({ ...v, step: 0, ops: [], fault: undefined, faultNote: undefined, settled: first.settled });
    }

    while (result.violations.length === 0 || o.keepGoing) {
      if (Date.now() - t0 >= o.durationMs || result.operations >= o.maxOps) break;
      const drawn = nextStep(gen, rng, o.generator, o.maxOps - result.operations);
      const step: Step = drawn.step;
      gen = drawn.state;
      result.steps++;
      const stepStart = Date.now();
      for (const n of step.nodesReady) await l.setNodeReady(n, true);
      let codes: number[] = [];
      const send = async () => {
        codes = await l.apply(step.ops);
      };
      let record: FaultRecord | undefined;
      if (step.fault) {
        record = await l.inject(step.fault, step.index, send);
        records.push(record);
        result.faults++;
        result.faultsByKind[step.fault.kind] = (result.faultsByKind[step.fault.kind] ?? 0) + 1;
      } else {
        await send();
      }
      for (const op of step.ops) result.operationsByKind[op.kind] = (result.operationsByKind[op.kind] ?? 0) + 1;
      result.operations += step.ops.length;
      const ops = step.ops.map(describeOp);
      const refused = step.ops.flatMap((op, i) => (accepted(op, codes[i] ?? 0) ? [] : [`${describeOp(op)} → HTTP ${codes[i] ?? 0}`]));
      if (refused.length > 0) {
        result.aborted = `the API refused operations the plan made, so the plan no longer matches the cluster: ${refused.join('; ')}`;
        result.violations.push({ check: 'harness.op-refused', message: result.aborted, step: step.index, ops, fault: step.fault && describeFault(step.fault), faultNote: record?.note, settled: false });
        break;
      }
      const s = await settle();
      result.settles++;
      settleTimes.push(s.ms);
      result.checksPassed += s.result.passed.length;
      const faultText = step.fault ? describeFault(step.fault) : undefined;
      o.log(`step ${step.index}: ${ops.join('; ') || '(no operations)'}${step.nodesReady.length ? `; ${step.nodesReady.join(', ')} Ready again` : ''}${faultText ? ` | fault: ${faultText}${record?.note ? ` (${record.note})` : ''}` : ''} | ${s.settled ? 'settled' : 'NOT settled'} in ${(s.ms / 1000).toFixed(1)} s (${s.looks} looks), ${(Date.now() - stepStart) / 1000 | 0} s in all, ${s.result.passed.length} checks passed${s.result.violations.length ? `, ${s.result.violations.length} VIOLATED` : ''}`);
      for (const v of s.result.violations) {
        result.violations.push({ ...v, step: step.index, ops, fault: faultText, faultNote: record?.note, settled: s.settled });
      }
    }
    if (o.beforeStop) await o.beforeStop(l, gen.services);
  } catch (err) {
    result.aborted = `the soak harness failed: ${(err as Error).stack ?? String(err)}`;
  } finally {
    if (lab) {
      result.logs = lab.logPaths();
      const stalls = lab.stalls();
      result.stalls = { count: stalls.length, longestMs: Math.max(0, ...stalls.map((x) => x.to - x.from)) };
      await lab.stop().catch(() => undefined);
    }
    const sorted = [...settleTimes].sort((a, b) => a - b);
    result.settleMs = { median: sorted[Math.floor(sorted.length / 2)] ?? 0, max: sorted[sorted.length - 1] ?? 0 };
    result.durationMs = Date.now() - t0;
  }
  return result;
}
