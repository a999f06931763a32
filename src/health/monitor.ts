// The running health checker: keeps the probe plan in step with the candidate desired state, runs the due
// probes under one concurrency bound, feeds their results to the state machines, and applies the verdicts
// (with the drain lifecycle) to the desired state the data plane gets. It holds the only timers of the
// health module; every decision it makes is one of the pure functions next to it.
import type { Config } from '../config/types.js';
import type { Family } from '../ipam/address.js';
import type { DesiredState, DesiredVirtualService } from '../model/types.js';
import type { Logger } from '../util/log.js';
import { applyHealth, type Lifecycle, type PairVerdict } from './apply.js';
import { backendTransitions, type BackendsChange } from './backends.js';
import { initialLaneState, noteNodeResult, pickUnits, type LaneState } from './dr-lane.js';
import { planProbes, vsHealthPlan } from './plan.js';
import { httpProbe, tcpProbe } from './probes.js';
import { ProbeScheduler } from './schedule.js';
import { initialState, observe, releaseAt, settled, type CheckState } from './state.js';
import { httpTargetKey, pairKey, type DrLane, type DrUnit, type HttpTarget, type ProbeKind, type ProbeOutcome, type ProbePlan, type Status } from './types.js';

/** What the monitor needs of the DR path check's kernel side (dr-kernel.ts). */
export interface DrKernel {
  sync(lanes: ReadonlyMap<string, DrLane>): Promise<{ families: Set<Family>; problems: string[] }>;
  acquirePort(node: string): number | undefined;
  releasePort(node: string, port: number): void;
  sourceAddress(family: Family): string | undefined;
  activeConnections(wanted: ReadonlyArray<{ vsKey: string; protocol: string; vip: string; port: number }>): Promise<Map<string, number>>;
  teardown(): Promise<void>;
  close(): void;
}

export interface HealthMonitorOptions {
  config: () => Config;
  log: Logger;
  http?: (t: HttpTarget, timeoutMs: number) => Promise<ProbeOutcome>;
  tcp?: typeof tcpProbe;
  /** Without it (no kernel access) there is no DR path check, and a drain ends by its grace period only. */
  kernel?: DrKernel;
  now?: () => number;
  /** A verdict changed, a drain finished or a grace period ended: recompute the desired state. */
  onChange: () => void;
  /** A Service lost its last healthy backend, or got one back. */
  onBackends?: (changes: BackendsChange[]) => void;
  /** Every conclusive or inconclusive probe result (metrics). */
  onProbe?: (kind: ProbeKind, outcome: ProbeOutcome) => void;
}

export interface CheckView {
  kind: ProbeKind | 'dr-node';
  /** `198.51.100.11:10256/healthz`, or `192.0.2.1:80 via this node` for DR. */
  target: string;
  state: Status;
  since: string | null;
  consecutiveSuccesses: number;
  consecutiveFailures: number;
  lastError: string | null;
  lastCheck: string | null;
  suppressedUntil: string | null;
}

export interface RealServerHealthView {
  health: 'up' | 'down' | 'unknown';
  /** serving, or draining (weight 0) / removed by health, with since when. */
  phase: 'serving' | 'draining' | 'removed';
  phaseSince: string | null;
  checks: CheckView[];
}

export interface HealthStats {
  targets: Record<ProbeKind, Record<Status, number>>;
  probes: Record<ProbeKind, { success: number; failure: number; inconclusive: number }>;
  inFlight: number;
  late: number;
  draining: number;
  removed: number;
}

interface HttpEntry {
  target: HttpTarget;
  states: Map<string, CheckState>;
}

const iso = (ms: number | undefined): string | null => (ms ? new Date(ms).toISOString() : null);
const HTTP = 'h:';
/** How soon the probe plan follows candidates changed by patchCandidates(). */
const REPLAN_MS = 500;
const LANE = 'd:';

export class HealthMonitor {
  private plan: ProbePlan = { http: new Map(), lanes: new Map(), vs: new Map() };
  private readonly http = new Map<string, HttpEntry>();
  /** DR unit states worth keeping (failing, down, or with a damping history), by unit key. */
  private readonly dr = new Map<string, { state: CheckState; unit: DrUnit }>();
  private readonly lanes = new Map<string, LaneState>();
  private readonly laneOkAt = new Map<string, number>();
  private readonly scheduler = new ProbeScheduler();
  private lifecycle = new Map<string, Lifecycle>();
  private readonly drained = new Map<string, number>();
  private healthyBackends = new Map<string, boolean>();
  private candidates = new Map<string, DesiredVirtualService>();
  private drFamilies = new Set<Family>();
  private drProblems: string[] = [];
  private laneSignature = '';
  private kernelSync: Promise<void> = Promise.resolve();
  private kernelSyncAt = 0;
  private drWasOn = false;
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;
  private drainTimer: NodeJS.Timeout | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;
  /** When deadlineTimer fires (the earliest drain grace end it was armed for). */
  private deadlineAt: number | undefined;
  /** A probe plan rebuild after patchCandidates(), once per burst. */
  private replanTimer: NodeJS.Timeout | undefined;
  private running = false;
  private readonly counts: HealthStats['probes'] = {
    'kube-proxy': { success: 0, failure: 0, inconclusive: 0 },
    service: { success: 0, failure: 0, inconclusive: 0 },
    dr: { success: 0, failure: 0, inconclusive: 0 },
  };

  private kernel: DrKernel | undefined;
  private suspectNow: boolean | undefined;

  constructor(private readonly o: HealthMonitorOptions) {
    this.kernel = o.kernel;
  }

  /** The kernel side becomes available after the data plane started (IPVS loaded). */
  attachKernel(k: DrKernel): void {
    this.kernel = k;
    this.laneSignature = '';
    this.o.onChange();
  }

  private now(): number {
    return (this.o.now ?? Date.now)();
  }

  private get hc(): Config['healthCheck'] {
    return this.o.config().healthCheck;
  }

  start(): void {
    this.running = true;
    this.arm();
    const every = () => {
      this.drainTimer = setTimeout(() => {
        void this.sampleDrains().finally(() => {
          if (this.running) every();
        });
      }, Math.max(200, this.hc.intervalSeconds * 1000));
    };
    every();
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    clearTimeout(this.drainTimer);
    clearTimeout(this.deadlineTimer);
    clearTimeout(this.replanTimer);
    await this.kernelSync.catch(() => undefined);
    this.kernel?.close();
  }

  /** The candidate virtual services (model output before health): what is probed follows them. */
  setCandidates(vss: readonly DesiredVirtualService[]): void {
    if (!this.running) return;
    clearTimeout(this.replanTimer);
    this.replanTimer = undefined;
    const hc = this.hc;
    this.candidates = new Map(vss.map((v) => [v.key, v]));
    const drOn = hc.enabled && hc.drPathCheck && this.kernel !== undefined;
    if (!hc.enabled) {
      this.plan = { http: new Map(), lanes: new Map(), vs: new Map() };
      this.http.clear();
      this.dr.clear();
      this.lanes.clear();
      this.scheduler.sync([], this.now());
    } else {
      this.plan = planProbes(vss, { config: hc, drAvailable: drOn });
      for (const [key, t] of this.plan.http) {
        const e = this.http.get(key);
        if (e) {
          e.target = t;
          for (const pk of [...e.states.keys()]) if (!t.policies.has(pk)) e.states.delete(pk);
        } else {
          this.http.set(key, { target: t, states: new Map() });
        }
      }
      for (const key of [...this.http.keys()]) if (!this.plan.http.has(key)) this.http.delete(key);
      for (const node of [...this.lanes.keys()]) if (!this.plan.lanes.has(node)) this.lanes.delete(node);
      for (const key of [...this.dr.keys()]) {
        const [node, vsKey] = splitPair(key);
        if (!this.plan.lanes.has(node) || !this.plan.vs.get(vsKey)?.dr || !this.candidates.has(vsKey)) this.dr.delete(key);
      }
      const targets: Array<{ key: string; intervalMs: number }> = [];
      for (const t of this.plan.http.values()) targets.push({ key: HTTP + t.key, intervalMs: t.intervalMs });
      for (const l of this.plan.lanes.values()) targets.push({ key: LANE + l.node, intervalMs: l.intervalMs });
      this.scheduler.sync(targets, this.now());
    }
    for (const key of [...this.lifecycle.keys()]) if (!this.candidates.has(splitPair(key)[1])) this.lifecycle.delete(key);
    this.syncKernel(drOn);
    this.arm();
  }

  /** Kernel work (fwmark services, nft) when the DR nodes change, and every 30 s to repair. */
  private syncKernel(drOn: boolean): void {
    const k = this.kernel;
    if (!k) return;
    if (!drOn) {
      if (this.drWasOn) {
        this.drWasOn = false;
        this.drFamilies = new Set();
        this.laneSignature = '';
        this.kernelSync = this.kernelSync.then(() => k.teardown()).catch((err) => this.o.log.error({ err: String(err) }, 'could not remove the DR path check rules'));
      }
      return;
    }
    this.drWasOn = true;
    const sig = [...this.plan.lanes.values()].map((l) => `${l.node}=${l.addresses[4] ?? ''},${l.addresses[6] ?? ''}`).sort().join(' ');
    const now = this.now();
    if (sig === this.laneSignature && now - this.kernelSyncAt < 30_000) return;
    this.laneSignature = sig;
    this.kernelSyncAt = now;
    const lanes = this.plan.lanes;
    this.kernelSync = this.kernelSync.then(async () => {
      const r = await k.sync(lanes);
      this.drFamilies = r.families;
      this.drProblems = r.problems;
    }).catch((err) => {
      this.drFamilies = new Set();
      this.drProblems = [`DR path check off: ${(err as Error).message}`];
      this.o.log.error({ err: (err as Error).message }, 'DR path check setup failed');
    });
  }

  /** Health messages for /readyz. */
  problems(): string[] {
    const out = [...this.drProblems];
    if (this.drSuspect()) out.push('every node fails the DR path check: that points at this host (marks, fwmark services, accept_local), not the nodes; DR verdicts are ignored until one passes');
    if (this.scheduler.late > 0) out.push(`${this.scheduler.late} probes started more than an interval late: raise healthCheck.maxConcurrentProbes`);
    return out;
  }

  private arm(): void {
    if (!this.running) return;
    this.pump();
    clearTimeout(this.timer);
    const next = this.scheduler.nextAt();
    if (next === undefined) return;
    this.timer = setTimeout(() => this.arm(), Math.max(5, next - this.now()));
  }

  private pump(): void {
    const max = this.hc.maxConcurrentProbes;
    while (this.running && this.inFlight < max) {
      const [key] = this.scheduler.takeDue(this.now(), 1);
      if (key === undefined) break;
      if (key.startsWith(HTTP)) this.runHttp(key);
      else this.runLane(key);
    }
  }

  private runHttp(skey: string): void {
    const entry = this.http.get(skey.slice(HTTP.length));
    if (!entry) {
      this.scheduler.done(skey, this.now());
      return;
    }
    const t = entry.target;
    this.inFlight++;
    void (this.o.http ?? httpProbe)(t, t.timeoutMs).then((outcome) => {
      this.inFlight--;
      this.scheduler.done(skey, this.now());
      this.recordHttp(t.key, t.kind, outcome);
      this.arm();
    });
  }

  private recordHttp(key: string, kind: 'kube-proxy' | 'service', outcome: ProbeOutcome): void {
    this.count(kind, outcome);
    const entry = this.http.get(key);
    if (!entry || outcome.inconclusive) return;
    const now = this.now();
    let changed = false;
    for (const [pk, policy] of entry.target.policies) {
      const prev = entry.states.get(pk) ?? initialState();
      const next = observe(prev, outcome, now, policy, entry.target.timeoutMs);
      entry.states.set(pk, next);
      if (next.status !== prev.status && (next.status === 'down' || prev.status === 'down')) {
        changed = true;
        this.logTransition(kind, `${entry.target.address}:${entry.target.port}${entry.target.path}`, entry.target.node, next, policy.key);
      }
    }
    if (changed) this.o.onChange();
  }

  private runLane(skey: string): void {
    const node = skey.slice(LANE.length);
    const lane = this.plan.lanes.get(node);
    const k = this.kernel;
    if (!lane || !k) {
      this.scheduler.done(skey, this.now());
      return;
    }
    let ls = this.lanes.get(node);
    if (!ls) this.lanes.set(node, (ls = initialLaneState()));
    const focused: DrUnit[] = [];
    if (lane.vss.length > this.hc.drPath.probesPerNode) {
      for (const e of this.dr.values()) if (e.unit.node === node && !settled(e.state)) focused.push(e.unit);
    }
    const picked = pickUnits(lane, ls, focused, this.hc.drPath.probesPerNode, (vs) => this.plan.vs.get(vs.key)?.policy);
    let pending = 0;
    const finishOne = () => {
      if (--pending === 0) {
        this.scheduler.done(skey, this.now());
        this.arm();
      }
    };
    for (const unit of picked) {
      const source = k.sourceAddress(unit.family);
      if (!source || this.inFlight >= this.hc.maxConcurrentProbes) continue;
      const port = k.acquirePort(node);
      if (port === undefined) continue;
      pending++;
      this.inFlight++;
      void (this.o.tcp ?? tcpProbe)({ address: unit.vip, port: unit.port, localAddress: source, localPort: port }, lane.timeoutMs).then((outcome) => {
        this.inFlight--;
        k.releasePort(node, port);
        this.recordDr(lane, unit, outcome);
        finishOne();
      });
    }
    if (pending === 0) this.scheduler.done(skey, this.now());
  }

  private recordDr(lane: DrLane, unit: DrUnit, outcome: ProbeOutcome): void {
    this.count('dr', outcome);
    if (outcome.inconclusive || !this.plan.lanes.has(lane.node)) return;
    const now = this.now();
    const prev = this.dr.get(unit.key)?.state ?? initialState();
    const next = observe(prev, outcome, now, unit.policy, lane.timeoutMs);
    // Settled healthy units without a damping history are forgotten: at scale they are most of them.
    if (settled(next) && next.flaps === 0 && next.penalty < 0.01) this.dr.delete(unit.key);
    else this.dr.set(unit.key, { state: next, unit });
    if (outcome.ok) this.laneOkAt.set(lane.node, now);
    let ls = this.lanes.get(lane.node);
    if (!ls) this.lanes.set(lane.node, (ls = initialLaneState()));
    const nodeChanged = noteNodeResult(lane, ls, unit, next.lastOk === true, next.lastError, now, unit.policy.rise, unit.policy.fall);
    const unitChanged = next.status !== prev.status && (next.status === 'down' || prev.status === 'down');
    if (unitChanged) this.logTransition('dr', `${unit.vip}:${unit.port}`, unit.node, next, unit.policy.key);
    if (nodeChanged) this.o.log.info({ node: lane.node, state: ls.node.status, reason: ls.node.lastError }, ls.node.status === 'down' ? 'health: node accepts no VIP traffic (DR path check)' : 'health: node accepts VIP traffic again (DR path check)');
    if (nodeChanged || unitChanged) this.o.onChange();
  }

  private logTransition(kind: ProbeKind, target: string, node: string, s: CheckState, policy: string): void {
    const fields = { kind, target, node, policy, state: s.status, flaps: s.flaps, suppressed: s.suppressed || undefined, reason: s.lastError };
    if (s.status === 'down') this.o.log.warn(fields, 'health: check failing, node drained for it');
    else this.o.log.info(fields, 'health: check passing again');
  }

  private count(kind: ProbeKind, o: ProbeOutcome): void {
    const c = this.counts[kind];
    if (o.inconclusive && c.inconclusive < 20) this.o.log.debug({ kind, err: o.error }, 'health: probe inconclusive (this host could not probe)');
    if (o.inconclusive) c.inconclusive++;
    else if (o.ok) c.success++;
    else c.failure++;
    this.o.onProbe?.(kind, o);
  }

  /** True when several nodes have DR results and none passed lately: our probing is broken, not them. */
  private drSuspect(): boolean {
    if (this.lanes.size < 2) return false;
    const now = this.now();
    const window = 3 * this.hc.intervalSeconds * 1000 + this.hc.timeoutSeconds * 1000;
    let judged = 0;
    for (const [node, ls] of this.lanes) {
      if (ls.node.status === 'unknown' && ls.streakFailures === 0) continue;
      judged++;
      if ((this.laneOkAt.get(node) ?? 0) > now - window) return false;
    }
    return judged >= 2;
  }

  private verdict(node: string, vs: DesiredVirtualService): PairVerdict | undefined {
    const p = this.plan.vs.get(vs.key);
    if (!p) return undefined;
    const reasons: string[] = [];
    if (p.httpKind && p.httpPort !== undefined) {
      const e = this.http.get(httpTargetKey(p.httpKind, node, p.httpPort));
      const s = e?.states.get(p.policy.key);
      if (s?.status === 'down') reasons.push(`${node}: ${p.httpKind === 'kube-proxy' ? 'kube-proxy' : 'healthCheckNodePort'} ${e!.target.address}:${e!.target.port}${e!.target.path}: ${s.suppressed && s.lastOk ? 'held down after flapping' : (s.lastError ?? 'failing')}`);
    }
    if (p.dr && this.drFamilies.has(vs.family) && !(this.suspectNow ?? this.drSuspect())) {
      const s = this.dr.get(pairKey(node, vs.key))?.state;
      if (s?.status === 'down') reasons.push(`${node}: DR path via ${vs.vip}:${vs.port}: ${s.suppressed && s.lastOk ? 'held down after flapping' : (s.lastError ?? 'failing')}`);
      const ls = this.lanes.get(node);
      if (ls?.node.status === 'down') reasons.push(`${node}: does not accept VIP traffic (${ls.node.lastError ?? 'DR path check'})`);
    }
    return reasons.length > 0 ? { down: true, reasons } : { down: false, reasons };
  }

  private suspectNodes(): Set<string> {
    const out = new Set<string>();
    for (const e of this.http.values()) {
      for (const s of e.states.values()) if (s.status === 'down') out.add(e.target.node);
    }
    for (const e of this.dr.values()) if (e.state.status === 'down') out.add(e.unit.node);
    for (const [node, ls] of this.lanes) if (ls.node.status === 'down') out.add(node);
    return out;
  }

  /** The candidates with verdicts applied: failed nodes at weight 0, then removed; Events on transitions. */
  apply(candidates: DesiredState): DesiredState {
    if (!this.running || !this.hc.enabled) {
      this.lifecycle.clear();
      return candidates;
    }
    const now = this.now();
    const r = this.applyVerdicts(candidates, now);
    this.lifecycle = r.lifecycle;
    for (const key of [...this.drained.keys()]) if (!this.lifecycle.has(key)) this.drained.delete(key);
    clearTimeout(this.deadlineTimer);
    this.deadlineAt = undefined;
    this.armDeadline(r.nextDeadline, now);
    const t = backendTransitions(this.healthyBackends, r.desired.virtualServices, (vs) => this.reasonsOf(vs), (vs) => this.candidates.get(vs.key)?.realServers.length ?? 0);
    this.healthyBackends = t.next;
    if (t.changes.length > 0) this.o.onBackends?.(t.changes);
    return r.desired;
  }

  /**
   * Some candidates changed (`set`, by key) or went (`remove`), the rest did not: verdicts are applied to the
   * changed ones only, with the same lifecycle and Events as apply(), so one new Service costs its own real
   * servers. What is probed follows within REPLAN_MS, one plan rebuild for a burst of changes; until then a
   * new virtual service has no verdicts of its own (optimistic start, as after setCandidates()).
   */
  patchCandidates(set: readonly DesiredVirtualService[], remove: readonly string[]): DesiredVirtualService[] {
    if (!this.running) return [...set];
    for (const k of remove) this.candidates.delete(k);
    for (const v of set) this.candidates.set(v.key, v);
    this.replanTimer ??= setTimeout(() => {
      this.replanTimer = undefined;
      if (this.running) this.setCandidates([...this.candidates.values()]);
    }, REPLAN_MS);
    const keys = new Set<string>(remove);
    for (const v of set) keys.add(v.key);
    for (const k of remove) this.healthyBackends.delete(k);
    for (const pair of [...this.lifecycle.keys()]) if (keys.has(splitPair(pair)[1])) this.lifecycle.delete(pair);
    if (!this.hc.enabled) return [...set];
    // How each changed virtual service is checked, now: checks it shares with others (a node's kube-proxy)
    // already have verdicts that apply to it.
    const planOptions = { config: this.hc, drAvailable: this.hc.drPathCheck && this.kernel !== undefined };
    for (const k of remove) this.plan.vs.delete(k);
    for (const v of set) {
      const p = vsHealthPlan(v, planOptions);
      if (p) this.plan.vs.set(v.key, p);
      else this.plan.vs.delete(v.key);
    }
    const now = this.now();
    const r = this.applyVerdicts({ virtualServices: [...set], problems: [] }, now);
    for (const [k, lc] of r.lifecycle) this.lifecycle.set(k, lc);
    for (const key of [...this.drained.keys()]) if (!this.lifecycle.has(key)) this.drained.delete(key);
    this.armDeadline(r.nextDeadline, now);
    const t = backendTransitions(this.healthyBackends, r.desired.virtualServices, (vs) => this.reasonsOf(vs), (vs) => this.candidates.get(vs.key)?.realServers.length ?? 0);
    for (const v of set) {
      const healthy = t.next.get(v.key);
      if (healthy === undefined) this.healthyBackends.delete(v.key);
      else this.healthyBackends.set(v.key, healthy);
    }
    if (t.changes.length > 0) this.o.onBackends?.(t.changes);
    return r.desired.virtualServices;
  }

  /** applyHealth() with this monitor's verdicts, lifecycle and drains (apply and patchCandidates). */
  private applyVerdicts(candidates: DesiredState, now: number): ReturnType<typeof applyHealth> {
    // Once per pass, not once per real server.
    this.suspectNow = this.drSuspect();
    try {
      return applyHealth(candidates, {
        verdict: (node, vs) => this.verdict(node, vs),
        suspectNodes: this.suspectNodes(),
        lifecycle: this.lifecycle,
        drained: (pair, since) => (this.drained.get(pair) ?? 0) > since,
        now,
        graceMs: this.hc.drainGraceSeconds * 1000,
      });
    } finally {
      this.suspectNow = undefined;
    }
  }

  /** A pass is due when a drain grace period ends; an earlier deadline replaces a later one. */
  private armDeadline(deadline: number | undefined, now: number): void {
    if (deadline === undefined || !this.running) return;
    if (this.deadlineAt !== undefined && this.deadlineAt <= deadline) return;
    clearTimeout(this.deadlineTimer);
    this.deadlineAt = deadline;
    this.deadlineTimer = setTimeout(() => {
      this.deadlineAt = undefined;
      this.o.onChange();
    }, Math.max(10, deadline - now + 10));
  }

  private reasonsOf(vs: DesiredVirtualService): string[] {
    const out: string[] = [];
    for (const rs of this.candidates.get(vs.key)?.realServers ?? []) {
      const lc = this.lifecycle.get(pairKey(rs.node, vs.key));
      if (lc) out.push(...lc.reasons);
      else if (rs.state === 'draining-not-ready') out.push(`${rs.node}: NotReady`);
    }
    return out;
  }

  /** Looks for drained connections on draining destinations; a drained one is removed on the next pass. */
  private async sampleDrains(): Promise<void> {
    const k = this.kernel;
    if (!k || this.lifecycle.size === 0) return;
    const wanted = new Map<string, { vsKey: string; protocol: string; vip: string; port: number }>();
    const pairs: Array<{ pair: string; vsKey: string; address: string }> = [];
    for (const [pair, lc] of this.lifecycle) {
      if (lc.phase !== 'draining') continue;
      const [node, vsKey] = splitPair(pair);
      const vs = this.candidates.get(vsKey);
      const rs = vs?.realServers.find((r) => r.node === node);
      if (!vs || !rs) continue;
      wanted.set(vsKey, { vsKey, protocol: vs.protocol, vip: vs.vip, port: vs.port });
      pairs.push({ pair, vsKey, address: rs.address });
    }
    if (pairs.length === 0) return;
    const started = this.now();
    const counts = await k.activeConnections([...wanted.values()]).catch(() => undefined);
    if (!counts) return;
    let newly = false;
    for (const p of pairs) {
      if ((counts.get(`${p.vsKey}|${p.address}`) ?? 0) !== 0) continue;
      if (!this.drained.has(p.pair)) newly = true;
      this.drained.set(p.pair, started);
    }
    if (newly) this.o.onChange();
  }

  /** Health of one real server for the API. */
  view(node: string, vsKey: string): RealServerHealthView {
    const vs = this.candidates.get(vsKey);
    const p = this.plan.vs.get(vsKey);
    const lc = this.lifecycle.get(pairKey(node, vsKey));
    const checks: CheckView[] = [];
    const fromState = (kind: CheckView['kind'], target: string, s: CheckState | undefined, policyDamping = p?.policy): CheckView => ({
      kind, target, state: s?.status ?? 'unknown', since: iso(s?.since),
      consecutiveSuccesses: s?.successes ?? 0, consecutiveFailures: s?.failures ?? 0,
      lastError: s?.lastError ?? null, lastCheck: iso(s?.lastAt),
      suppressedUntil: s && policyDamping ? iso(releaseAt(s, policyDamping)) : null,
    });
    if (p && vs && this.hc.enabled) {
      if (p.httpKind && p.httpPort !== undefined) {
        const e = this.http.get(httpTargetKey(p.httpKind, node, p.httpPort));
        const target = e ? `${e.target.address}:${e.target.port}${e.target.path}` : `${node}:${p.httpPort}`;
        checks.push(fromState(p.httpKind, target, e?.states.get(p.policy.key)));
      }
      if (p.dr && this.kernel) {
        const s = this.dr.get(pairKey(node, vsKey))?.state;
        const ls = this.lanes.get(node);
        // A forgotten settled unit passed its last probe: report it up while its node accepts VIP traffic.
        const shown: CheckState | undefined = s ?? (ls && ls.node.status === 'up' ? { ...initialState(), status: 'up', since: ls.node.since } : undefined);
        const view = fromState('dr', `${vs.vip}:${vs.port} via ${node}`, this.drFamilies.has(vs.family) ? shown : undefined);
        if (!this.drFamilies.has(vs.family)) view.lastError = this.drProblems[0] ?? 'DR path check not available on this host';
        checks.push(view);
        if (ls?.node.status === 'down') {
          checks.push({ kind: 'dr-node', target: node, state: 'down', since: iso(ls.node.since), consecutiveSuccesses: ls.streakSuccesses, consecutiveFailures: ls.streakFailures, lastError: ls.node.lastError ?? null, lastCheck: null, suppressedUntil: null });
        }
      }
    }
    const rs = vs?.realServers.find((r) => r.node === node);
    const v = rs && vs ? this.verdict(node, vs) : undefined;
    const known = checks.some((c) => c.state !== 'unknown');
    const health: RealServerHealthView['health'] = v?.down ? 'down' : known && checks.every((c) => c.state !== 'down') ? 'up' : checks.some((c) => c.state === 'down') ? 'down' : 'unknown';
    return { health, phase: lc?.phase ?? 'serving', phaseSince: iso(lc?.since), checks };
  }

  stats(): HealthStats {
    const zero = (): Record<Status, number> => ({ unknown: 0, up: 0, down: 0 });
    const targets: HealthStats['targets'] = { 'kube-proxy': zero(), service: zero(), dr: zero() };
    for (const e of this.http.values()) {
      // A target is down for the metric when any policy using it judges it down.
      const statuses = [...e.states.values()].map((s) => s.status);
      const st: Status = statuses.includes('down') ? 'down' : statuses.includes('up') ? 'up' : 'unknown';
      targets[e.target.kind][st]++;
    }
    let units = 0;
    for (const l of this.plan.lanes.values()) units += l.vss.length;
    let down = 0;
    let tracked = 0;
    for (const e of this.dr.values()) {
      tracked++;
      if (e.state.status === 'down') down++;
    }
    targets.dr.down = down;
    targets.dr.up = tracked - down;
    targets.dr.unknown = Math.max(0, units - tracked);
    let draining = 0;
    let removed = 0;
    for (const lc of this.lifecycle.values()) {
      if (lc.phase === 'draining') draining++;
      else removed++;
    }
    return { targets, probes: structuredClone(this.counts), inFlight: this.inFlight, late: this.scheduler.late, draining, removed };
  }

  /** Probes per interval the current plan asks for (HTTP targets plus the DR budget), for the bench. */
  probesPerInterval(): { http: number; dr: number } {
    let dr = 0;
    for (const l of this.plan.lanes.values()) dr += Math.min(l.vss.length, this.hc.drPath.probesPerNode);
    return { http: this.plan.http.size, dr };
  }
}

function splitPair(key: string): [string, string] {
  const i = key.indexOf('|');
  return [key.slice(0, i), key.slice(i + 1)];
}
