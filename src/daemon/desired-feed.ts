// Keeps the data plane fed with the desired state as the cluster changes, at the cost of what changed: a
// Service, its EndpointSlices or its addresses changing recomputes that Service alone (DesiredModel) and
// hands the data plane only its virtual services (DataPlane.patch), so one new Service among 10,000 costs
// its own entries from event to kernel. Whatever every Service depends on (Nodes, config, probe verdicts, a
// NotReady grace period ending, a relist) is a rebuild of the whole state, as before.
// Changes are coalesced: per-Service changes over reconcile.coalesceMs, rebuilds over a window that grows with
// their cost (a burst spends at most a third of the CPU recomputing).
import { performance } from 'node:perf_hooks';
import type { ModelInputs } from '../model/desired.js';
import { DesiredModel, type ServiceSource } from '../model/incremental.js';
import type { DesiredState, DesiredVirtualService, ModelProblem } from '../model/types.js';
import type { Logger } from '../util/log.js';
import type { DataPlane } from './dataplane.js';

export interface FeedHealth {
  setCandidates(vss: readonly DesiredVirtualService[]): void;
  apply(candidates: DesiredState): DesiredState;
  patchCandidates(set: readonly DesiredVirtualService[], remove: readonly string[]): DesiredVirtualService[];
}

export interface DesiredFeedOptions {
  /** Everything a rebuild needs. */
  inputs: () => ModelInputs;
  /** One Service's current inputs, for per-Service updates. */
  source: ServiceSource;
  health: FeedHealth;
  dataPlane: Pick<DataPlane, 'update' | 'patch'>;
  /** Every current problem after a rebuild (`all`), or those of the Services an update looked at (`some`). */
  onProblems: (all: readonly ModelProblem[] | undefined, some: ReadonlyMap<string, readonly ModelProblem[]> | undefined) => void;
  coalesceMs: () => number;
  log: Logger;
}

export interface FeedStats {
  rebuilds: number;
  updates: number;
  lastRebuildMs: number;
  lastUpdateMs: number;
}

export class DesiredFeed {
  private readonly model = new DesiredModel();
  private ready = false;
  private rebuildDue = false;
  private readonly dirty = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;
  readonly stats: FeedStats = { rebuilds: 0, updates: 0, lastRebuildMs: 0, lastUpdateMs: 0 };

  constructor(private readonly o: DesiredFeedOptions) {}

  /** Whether the first rebuild ran (nothing reaches the data plane before start()). */
  get started(): boolean {
    return this.ready;
  }

  /** The first whole state, once every informer listed and the ledger is re-confirmed; then changes flow. */
  start(): DesiredState {
    this.ready = true;
    return this.rebuildNow();
  }

  /** These Services (`namespace/name`) changed: their Service object, slices or addresses. */
  servicesChanged(ids: Iterable<string>): void {
    if (!this.ready) return;
    for (const id of ids) this.dirty.add(id);
    this.arm();
  }

  /** Something every Service depends on changed. */
  everything(): void {
    if (!this.ready) return;
    this.rebuildDue = true;
    this.arm();
  }

  /** A rebuild right away (POST /reconcile); returns the state handed to the data plane. */
  rebuildNow(): DesiredState {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.rebuildDue = false;
    this.dirty.clear();
    const t0 = performance.now();
    const candidates = this.model.rebuild(this.o.inputs());
    this.o.health.setCandidates(candidates.virtualServices);
    const desired = this.o.health.apply(candidates);
    this.o.onProblems(desired.problems, undefined);
    this.o.dataPlane.update(desired);
    this.stats.rebuilds++;
    this.stats.lastRebuildMs = performance.now() - t0;
    this.o.log.debug({ virtualServices: desired.virtualServices.length, ms: Math.round(this.stats.lastRebuildMs) }, 'desired state rebuilt');
    this.armDeadline();
    return desired;
  }

  stop(): void {
    this.ready = false;
    clearTimeout(this.timer);
    clearTimeout(this.deadlineTimer);
    this.timer = undefined;
  }

  private arm(): void {
    // A pending pass takes this change too (as a rebuild if one is due by the time it runs).
    if (this.timer) return;
    const wait = this.rebuildDue ? Math.max(this.o.coalesceMs(), 2 * this.stats.lastRebuildMs) : this.o.coalesceMs();
    this.timer = setTimeout(() => {
      this.timer = undefined;
      try {
        if (this.rebuildDue) this.rebuildNow();
        else this.updateNow();
      } catch (err) {
        // Never a half-fed data plane: a whole new state follows.
        this.o.log.error({ err: (err as Error).message }, 'computing the desired state failed; rebuilding it');
        this.everything();
      }
    }, wait);
  }

  private updateNow(): void {
    if (this.dirty.size === 0) return;
    const t0 = performance.now();
    const ids = [...this.dirty];
    this.dirty.clear();
    const delta = this.model.updateServices(ids, this.o.source);
    const set = this.o.health.patchCandidates(delta.set, delta.remove);
    this.o.onProblems(undefined, delta.problems);
    if (set.length > 0 || delta.remove.length > 0) this.o.dataPlane.patch({ set, remove: delta.remove });
    this.stats.updates++;
    this.stats.lastUpdateMs = performance.now() - t0;
    this.o.log.debug({ services: ids.length, set: set.length, removed: delta.remove.length, ms: Math.round(this.stats.lastUpdateMs * 100) / 100 }, 'desired state updated');
  }

  /** A NotReady node's grace period ends with time alone: rebuild then. */
  private armDeadline(): void {
    clearTimeout(this.deadlineTimer);
    const at = this.model.nextDeadline;
    if (at === undefined || !this.ready) return;
    this.deadlineTimer = setTimeout(() => this.everything(), Math.max(10, at - Date.now() + 10));
    this.deadlineTimer.unref();
  }
}
