// Keeps the kernel's IPVS table equal to the desired state: diff, apply the minimal operations in one batched
// netlink exchange, record what we own. Two kinds of pass:
// - a resync reads the whole kernel table (start-up, the periodic resync, an explicit reconcile), so that
//   out-of-band edits (someone ran `ipvsadm -D`) are repaired, and reports what it found changed;
// - an update pass (a desired-state change, coalesced over `coalesceMs`) diffs against the table as the last
//   passes left it, so one new Service costs its own operations and not a read of 10,000 services; and an
//   entry that asks for what it asked at the last pass (same object, or same fields and the same shared
//   real-server list) skips the comparison with the kernel, so the pure work is a lookup per service.
// - a verification (verifyNow(n), the daemon's rolling check between resyncs) re-reads n of the desired services
//   from the kernel, the next ones in turn, and repairs and reports any that drifted: each costs its own two
//   exchanges, so drift on a small table is repaired within a second and a large table is covered bit by bit
//   without a whole-table read each time.
// Any failed operation or transport error drops that remembered table: the next pass reads the kernel again,
// and an update pass with failures is followed at once by a resync.
import { performance } from 'node:perf_hooks';
import type { IpvsClient, ServiceKey } from '../ipvs/index.js';
import type { DesiredVirtualService } from '../model/types.js';
import type { Logger } from '../util/log.js';
import { changedByKey, changedServices, diff, sameService } from './diff.js';
import { dumpedKey, fromKernel, keyOf, sameAsDumped, toIpvsOp } from './kernel-map.js';
import type { OwnedServices } from './ownership.js';
import type { KernelDestination, KernelService, Operation } from './types.js';

export interface ReconcilerOptions {
  client: Pick<IpvsClient, 'table' | 'apply' | 'entries'>;
  owned: OwnedServices;
  log: Logger;
  coalesceMs: number;
  /** Called after each pass (metrics). */
  onPass?: (r: PassReport) => void;
}

export interface PassReport {
  operations: number;
  errors: number;
  durationMs: number;
  /** The pass read the kernel's table (a resync); false when it diffed against the remembered table. */
  kernelRead: boolean;
  /** Time spent reading the kernel's table (0 when not read). */
  readMs: number;
  /** Time spent finding the operations (comparing the desired state with the table). */
  diffMs: number;
  /** Time spent in the kernel exchange of the operations (0 when there were none). */
  applyMs: number;
  /** Operations by kind, e.g. { 'add-service': 1, 'update-destination': 2 }. */
  byKind: Record<string, number>;
  errorMessages: string[];
  /** Desired services compared in full with the kernel's entry; the others were unchanged since the last
   * pass (all of them after a kernel read). */
  compared: number;
  /** Owned virtual services a resync or verification found different from what ipvs-lb had programmed
   * (changed outside ipvs-lb), repaired by this pass. */
  drifted: string[];
  /** Services a verification re-read from the kernel (0 for other passes). */
  verified: number;
}

export interface ReconcilerTotals {
  passes: number;
  kernelReads: number;
  operations: number;
  errors: number;
  drifted: number;
  verified: number;
}

interface Queued {
  read: boolean;
  /** Services to verify (the most any caller asked for); moot when `read`. */
  verify: number;
  waiters: Waiter[];
}

interface Waiter {
  resolve: (r: PassReport) => void;
  reject: (e: unknown) => void;
}

const copyService = (s: KernelService): KernelService => ({ ...s, schedulerFlags: [...s.schedulerFlags], destinations: s.destinations.map((d) => ({ ...d })) });
const sameDestKey = (a: KernelDestination, b: KernelDestination) => a.address === b.address && a.port === b.port;

export class Reconciler {
  private desired: readonly DesiredVirtualService[] = [];
  /** The desired state keyed, once patch() is used (built from `desired` on the first patch). */
  private byKey: Map<string, DesiredVirtualService> | undefined;
  /** Keys patched since the last pass began; 'all' after update() (every entry is to be looked at). */
  private dirty: Set<string> | 'all' = 'all';
  private allocatedVips: Iterable<string> = [];
  /** Built from allocatedVips when ownership is first asked (a removal or a drift), not on every update. */
  private vips: Set<string> | undefined;
  /** Key → the desired entry this.kernel's entry is known to equal (the last pass compared or programmed it). */
  private synced = new Map<string, DesiredVirtualService>();
  private timer: NodeJS.Timeout | undefined;
  /** The kernel's table as the last read and the operations since left it; undefined: read before diffing. */
  private kernel: Map<string, KernelService> | undefined;
  private queued: Queued | undefined;
  /** The rolling verification's round: the desired keys as they were when it began, and the next one. */
  private verifyOrder: string[] = [];
  private verifyAt = 0;
  /** A resync's kernel read in flight: update passes go on beside it (against the remembered table) and the
   * keys they write are recorded, so the read's answer for those keys is not mistaken for drift. */
  private reading: { touched: Set<string> } | undefined;
  /** Update passes asked for while a resync reads. */
  private beside: Waiter[] | undefined;
  /** Wakes a resync waiting for its read or for update passes to serve. */
  private wake: (() => void) | undefined;
  private draining: Promise<void> | undefined;
  private stopped = false;
  passes = 0;
  lastReport: PassReport | undefined;
  readonly totals: ReconcilerTotals = { passes: 0, kernelReads: 0, operations: 0, errors: 0, drifted: 0, verified: 0 };

  constructor(private readonly o: ReconcilerOptions) {}

  /** The latest desired state and the VIPs we allocated (their services are ours even if not recorded). The
   * change is applied by an update pass after the coalescing window. The entries (and their real-server
   * lists) must not be changed afterwards: a new state comes as new objects, unchanged ones may be reused. */
  update(desired: readonly DesiredVirtualService[], allocatedVips: Iterable<string>): void {
    this.desired = desired;
    // Keyed now (the full path is linear anyway), so the patches that follow cost their own entries.
    this.byKey = new Map(desired.map((v) => [v.key, v]));
    this.dirty = 'all';
    this.allocatedVips = allocatedVips;
    this.vips = undefined;
    this.schedule();
  }

  /**
   * A change to the desired state given as what changed: entries added or changed (`set`, by key) and keys no
   * longer desired (`remove`); `allocatedVips` when they changed. The following update pass looks only at
   * those keys, so its cost does not grow with the table. The same contract as update() for the objects.
   */
  patch(changes: { set?: readonly DesiredVirtualService[]; remove?: readonly string[] }, allocatedVips?: Iterable<string>): void {
    const byKey = (this.byKey ??= new Map(this.desired.map((v) => [v.key, v])));
    const dirty = this.dirty;
    for (const v of changes.set ?? []) {
      byKey.set(v.key, v);
      if (dirty !== 'all') dirty.add(v.key);
    }
    for (const k of changes.remove ?? []) {
      byKey.delete(k);
      if (dirty !== 'all') dirty.add(k);
    }
    if (allocatedVips) {
      this.allocatedVips = allocatedVips;
      this.vips = undefined;
    }
    this.schedule();
  }

  /** Every desired entry, whichever of update() and patch() set it. */
  private desiredEntries(): Iterable<DesiredVirtualService> {
    const byKey = this.byKey;
    return byKey ? { [Symbol.iterator]: () => byKey.values() } : this.desired;
  }

  private schedule(): void {
    if (this.timer || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.reconcileNow({ read: false }).catch((err) => this.o.log.error({ err: (err as Error).message }, 'reconcile failed'));
    }, this.o.coalesceMs);
    // Pending work alone does not keep a process alive (the daemon has its sockets and timers for that).
    this.timer.unref();
  }

  /**
   * Runs a pass: a resync (reads the kernel) unless `read: false`. A call while a pass runs is served by one
   * following pass shared by every such caller (a resync if any of them asked for one), so each caller's
   * answer reflects the desired state as it was when it called.
   */
  reconcileNow(opts: { read?: boolean } = {}): Promise<PassReport> {
    return new Promise((resolve, reject) => {
      const read = opts.read ?? true;
      if (!read && this.reading) {
        // A resync is reading the kernel (seconds at 10,000 services): this change need not wait for it.
        (this.beside ??= []).push({ resolve, reject });
        this.wake?.();
        return;
      }
      const q = this.queue();
      q.read ||= read;
      q.waiters.push({ resolve, reject });
      this.draining ??= this.drain();
    });
  }

  /**
   * A verification: re-reads the next `count` desired services from the kernel (round after round over the
   * whole desired state, each service at most once per pass), repairs those that differ and reports the owned
   * ones among them as drifted. Also applies pending changes, like an update pass. Without a remembered table
   * (before the first pass, after a failure) it is a resync. Queued like reconcileNow(); a resync asked for
   * at the same time covers it.
   */
  verifyNow(count: number): Promise<PassReport> {
    return new Promise((resolve, reject) => {
      const q = this.queue();
      q.verify = Math.max(q.verify, Math.max(0, Math.floor(count)));
      q.waiters.push({ resolve, reject });
      this.draining ??= this.drain();
    });
  }

  private queue(): Queued {
    return (this.queued ??= { read: false, verify: 0, waiters: [] });
  }

  private async drain(): Promise<void> {
    while (this.queued) {
      const q = this.queued;
      this.queued = undefined;
      try {
        const r = q.read && this.kernel ? await this.resyncBeside() : await this.pass(q.read, { verify: q.verify });
        for (const w of q.waiters) w.resolve(r);
        // Failures against the remembered table mean it was wrong: repair from a fresh read right away.
        if (!r.kernelRead && r.errors > 0) this.queue().read = true;
      } catch (err) {
        for (const w of q.waiters) w.reject(err);
      }
    }
    this.draining = undefined;
  }

  /**
   * A resync whose kernel read lets update passes run meanwhile (against the remembered table): a new
   * Service is programmed at once, not after a read of the whole table. Keys those passes wrote take the
   * remembered state in the read's answer (whether the read saw the write is unknown); a drift on them is
   * found by the next resync.
   */
  private async resyncBeside(): Promise<PassReport> {
    const reading = { touched: new Set<string>() };
    this.reading = reading;
    const t0 = performance.now();
    let fresh: Map<string, KernelService> | undefined;
    let readError: unknown;
    let readDone = false;
    void this.readKernel()
      .then((f) => void (fresh = f), (e: unknown) => void (readError = e))
      .then(() => {
        readDone = true;
        this.wake?.();
      });
    try {
      for (;;) {
        // Served only while the remembered table is trusted: a failed pass drops it, and the rest wait.
        while (this.beside && this.kernel) {
          const waiters = this.beside;
          this.beside = undefined;
          try {
            const r = await this.pass(false, { touched: reading.touched });
            for (const w of waiters) w.resolve(r);
            // The read may predate what failed: another resync follows this one.
            if (r.errors > 0) this.queue().read = true;
          } catch (err) {
            for (const w of waiters) w.reject(err);
          }
        }
        if (readDone) break;
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
      }
    } finally {
      this.reading = undefined;
      if (this.beside) {
        this.queue().waiters.push(...this.beside);
        this.beside = undefined;
      }
    }
    if (readError !== undefined) {
      this.forget();
      throw readError;
    }
    return this.pass(true, { fresh: { table: fresh!, readMs: performance.now() - t0, startedAt: t0 }, touched: reading.touched });
  }

  /** The next keys of the rolling verification: at most `count`, each once, starting a new round (over the
   * desired keys as they are then) when the last one ends; keys no longer desired are skipped. */
  private nextToVerify(count: number): string[] {
    const desired = (this.byKey ??= new Map(this.desired.map((v) => [v.key, v])));
    const out = new Set<string>();
    let newRound = false;
    while (out.size < count) {
      if (this.verifyAt >= this.verifyOrder.length) {
        if (newRound) break;
        this.verifyOrder = [...desired.keys()];
        this.verifyAt = 0;
        newRound = true;
        if (this.verifyOrder.length === 0) break;
      }
      const k = this.verifyOrder[this.verifyAt++]!;
      if (desired.has(k)) out.add(k);
    }
    return [...out];
  }

  /** Replaces the remembered entries of `keys` with what the kernel holds now; an owned one that differs from
   * what was remembered is drift. The keys are marked for the diff that follows. */
  private async refresh(kernel: Map<string, KernelService>, keys: readonly string[], report: PassReport): Promise<void> {
    if (keys.length === 0) return;
    const byKey = this.byKey!;
    const entries = await this.o.client.entries(keys.map((k) => serviceKeyOf(byKey.get(k)!)));
    const dirty = this.dirty;
    keys.forEach((key, i) => {
      const e = entries[i];
      const fresh = e ? fromKernel(e) : undefined;
      const remembered = kernel.get(key);
      if (this.isOwned(key) && (remembered && fresh ? !sameService(remembered, fresh) : remembered !== fresh)) report.drifted.push(key);
      if (fresh) kernel.set(key, fresh);
      else kernel.delete(key);
      this.synced.delete(key);
      if (dirty !== 'all') dirty.add(key);
    });
    report.verified = keys.length;
    report.drifted.sort();
  }

  private isOwned = (key: string): boolean => this.o.owned.has(key) || this.vipSet().has(vipOfKey(key));

  /** The allocated VIPs as a set: the caller's own when it gave one (a live view), else built once. */
  private vipSet(): { has(vip: string): boolean } {
    const given = this.allocatedVips as Partial<ReadonlySet<string>>;
    if (typeof given.has === 'function') return given as ReadonlySet<string>;
    return (this.vips ??= new Set(this.allocatedVips));
  }

  /**
   * A whole-table read can miss services that were there all along: an IPVS dump resumes each chunk by
   * position, so a service deleted while the dump runs (by an update pass beside it, or by anyone) shifts the
   * rest and the next chunk skips one, and the kernel flags no interrupted dump for IPVS. Taken as the truth,
   * the skipped service would be re-added (EEXIST) and reported as drift nobody made. So every key where the
   * read and the remembered table disagree (none when nothing changed) is read again on its own, and that
   * answer replaces the read's. Keys in `skip` already took their remembered state.
   */
  private async confirm(remembered: ReadonlyMap<string, KernelService>, fresh: Map<string, KernelService>, skip: ReadonlySet<string> | undefined): Promise<void> {
    const disputed: KernelService[] = [];
    for (const [k, s] of remembered) {
      if (skip?.has(k)) continue;
      const f = fresh.get(k);
      if (!f || !sameService(s, f)) disputed.push(s);
    }
    for (const [k, s] of fresh) if (!remembered.has(k) && !skip?.has(k)) disputed.push(s);
    if (disputed.length === 0) return;
    const entries = await this.o.client.entries(disputed.map(keyOf));
    disputed.forEach((s, i) => {
      const e = entries[i];
      const again = e ? fromKernel(e) : undefined;
      if (again) fresh.set(s.key, again);
      else fresh.delete(s.key);
    });
  }

  /** Forgets the remembered table: the next pass reads the kernel and compares every entry. */
  private forget(): void {
    this.kernel = undefined;
    this.synced = new Map();
  }

  /**
   * Reads the kernel's table in comparison form, keyed. An entry equal to the remembered one is that object
   * (see sameAsDumped): safe, because a remembered entry changes in place only by a write of its own key,
   * and a key written while the read is in flight takes the remembered state anyway (touched).
   */
  private async readKernel(remembered = this.kernel): Promise<Map<string, KernelService>> {
    const table = await this.o.client.table();
    const out = new Map<string, KernelService>();
    for (const e of table) {
      const key = dumpedKey(e);
      if (key === undefined) continue;
      const prev = remembered?.get(key);
      const k = prev && sameAsDumped(prev, e) ? prev : fromKernel(e);
      if (k) out.set(key, k);
    }
    return out;
  }

  /**
   * One pass. `fresh`: the kernel's table read already (resyncBeside), with `touched` the keys written since
   * the read began. `touched` alone: this is an update pass beside a read, which records the keys it writes.
   */
  private async pass(read: boolean, o: { fresh?: { table: Map<string, KernelService>; readMs: number; startedAt: number }; touched?: Set<string>; verify?: number } = {}): Promise<PassReport> {
    // A resync's duration counts from the start of its read.
    const t0 = o.fresh?.startedAt ?? performance.now();
    const report: PassReport = { operations: 0, errors: 0, durationMs: 0, kernelRead: false, readMs: 0, diffMs: 0, applyMs: 0, byKind: {}, errorMessages: [], drifted: [], compared: 0, verified: 0 };
    if (!read && this.kernel && o.verify) {
      await this.refresh(this.kernel, this.nextToVerify(o.verify), report);
      report.readMs = round(performance.now() - t0);
    }
    if (read || !this.kernel) {
      const remembered = this.kernel;
      this.forget();
      let fresh: Map<string, KernelService>;
      if (o.fresh) {
        fresh = o.fresh.table;
        report.readMs = round(o.fresh.readMs);
        if (remembered) {
          for (const k of o.touched ?? []) {
            const s = remembered.get(k);
            if (s) fresh.set(k, copyService(s));
            else fresh.delete(k);
          }
        }
      } else {
        fresh = await this.readKernel(remembered);
      }
      if (remembered) await this.confirm(remembered, fresh, o.touched);
      if (!o.fresh) report.readMs = round(performance.now() - t0);
      report.kernelRead = true;
      if (remembered) report.drifted = driftedKeys(remembered, fresh, this.isOwned);
      this.kernel = fresh;
    }
    const kernel = this.kernel!;
    const d0 = performance.now();
    const dirty = this.dirty;
    this.dirty = new Set();
    let ops: Operation[];
    if (report.kernelRead || dirty === 'all' || !this.byKey) {
      const scan = changedServices(this.desiredEntries(), kernel, this.synced);
      report.compared = scan.compared;
      ops = diff({ desired: scan.changed, desiredKeys: scan.keys, noRemovals: scan.coversKernel, actual: kernel, owned: this.isOwned });
    } else {
      const scan = changedByKey(dirty, this.byKey, kernel, this.synced);
      report.compared = scan.compared;
      ops = diff({ desired: scan.changed, noRemovals: true, actual: kernel, owned: this.isOwned });
      for (const k of scan.removed) if (this.isOwned(k)) ops.push({ op: 'delete-service', service: kernel.get(k)! });
    }
    report.diffMs = round(performance.now() - d0);
    report.operations = ops.length;
    if (ops.length > 0) {
      let results;
      const a0 = performance.now();
      try {
        results = await this.o.client.apply(ops.map(toIpvsOp));
        report.applyMs = round(performance.now() - a0);
      } catch (err) {
        // The outcome is unknown (overrun, timeout): read the kernel before the next diff.
        this.forget();
        throw err;
      }
      const added: string[] = [];
      const removed: string[] = [];
      results.forEach((r, i) => {
        const op = ops[i]!;
        o.touched?.add(op.service.key);
        report.byKind[op.op] = (report.byKind[op.op] ?? 0) + 1;
        if (r.error) {
          report.errors++;
          report.errorMessages.push(r.error.message);
          return;
        }
        remember(kernel, op);
        if (op.op === 'add-service' || op.op === 'update-service') added.push(op.service.key);
        if (op.op === 'delete-service') removed.push(op.service.key);
      });
      if (report.errors > 0) this.forget();
      this.o.owned.update(added, removed);
      if (report.errors > 0) this.o.log.error({ errors: report.errorMessages.slice(0, 10), count: report.errors }, 'some kernel operations failed; a resync follows');
      this.o.log.info({ operations: ops.length, byKind: report.byKind, kernelRead: report.kernelRead }, 'kernel reconciled');
    }
    if (report.drifted.length > 0) {
      const foundBy = report.kernelRead ? 'resync' : 'verification';
      this.o.log.warn({ services: report.drifted.slice(0, 20), count: report.drifted.length, foundBy }, 'owned IPVS services were changed outside ipvs-lb; restored');
    }
    report.durationMs = round(performance.now() - t0);
    this.passes++;
    this.totals.passes++;
    if (report.kernelRead) this.totals.kernelReads++;
    this.totals.verified += report.verified;
    this.totals.operations += report.operations;
    this.totals.errors += report.errors;
    this.totals.drifted += report.drifted.length;
    this.lastReport = report;
    this.o.onPass?.(report);
    return report;
  }

  /** The operations a resync would make now, without making them (tests, `doctor`). */
  async plan(): Promise<Operation[]> {
    const kernel = await this.readKernel();
    const { changed, keys } = changedServices(this.desiredEntries(), kernel);
    return diff({ desired: changed, desiredKeys: keys, actual: kernel, owned: this.isOwned });
  }

  /** Cancels a pending update pass; a pass already running finishes. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}

const round = (ms: number): number => Math.round(ms * 100) / 100;

/** Keys of owned services that differ between what we remembered and what the kernel holds. */
function driftedKeys(remembered: ReadonlyMap<string, KernelService>, fresh: ReadonlyMap<string, KernelService>, owned: (key: string) => boolean): string[] {
  const out: string[] = [];
  for (const [key, a] of remembered) {
    if (!owned(key)) continue;
    const b = fresh.get(key);
    if (!b || !sameService(a, b)) out.push(key);
  }
  for (const key of fresh.keys()) if (!remembered.has(key) && owned(key)) out.push(key);
  return out.sort();
}

/** Updates the remembered table with an operation the kernel accepted. */
function remember(kernel: Map<string, KernelService>, op: Operation): void {
  const key = op.service.key;
  switch (op.op) {
    case 'add-service':
      kernel.set(key, { ...copyService(op.service), destinations: [] });
      return;
    case 'update-service': {
      const s = kernel.get(key);
      if (s) kernel.set(key, { ...copyService(op.service), destinations: s.destinations });
      return;
    }
    case 'delete-service':
      kernel.delete(key);
      return;
    case 'add-destination':
    case 'update-destination': {
      const s = kernel.get(key);
      if (!s) return;
      const i = s.destinations.findIndex((d) => sameDestKey(d, op.destination));
      if (i >= 0) s.destinations[i] = { ...op.destination };
      else s.destinations.push({ ...op.destination });
      return;
    }
    case 'delete-destination': {
      const s = kernel.get(key);
      if (s) s.destinations = s.destinations.filter((d) => !sameDestKey(d, op.destination));
      return;
    }
  }
}

function serviceKeyOf(v: DesiredVirtualService): ServiceKey {
  return { address: v.vip, protocol: v.protocol.toLowerCase() as 'tcp' | 'udp' | 'sctp', port: v.port };
}

/** `TCP/192.0.2.1:80` → `192.0.2.1`; `TCP/[2001:db8::1]:80` → `2001:db8::1`. */
export function vipOfKey(key: string): string {
  const rest = key.slice(key.indexOf('/') + 1);
  return rest.startsWith('[') ? rest.slice(1, rest.indexOf(']')) : rest.slice(0, rest.lastIndexOf(':'));
}
