// The desired state kept between changes, so that one changed Service costs its own virtual services and not
// a recomputation of 10,000: each Service's part (serviceModel) is kept, and who holds a contested
// (VIP, protocol, port) is kept per key. A change of anything every Service depends on (nodes, config, health,
// a NotReady grace period ending) is a rebuild. Pure: the caller passes the inputs, nothing here does I/O.
// Invariant, checked by a property test: after any sequence of updates, state() equals desiredState() of the
// same inputs.
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import {
  modelContext, olderFirst, portConflict, serviceId, serviceModel, slicesByService,
  type AllocatedAddress, type ModelContext, type ModelInputs, type ServiceModel,
} from './desired.js';
import type { DesiredState, DesiredVirtualService, ModelProblem } from './types.js';

/** Where updateServices() finds a Service's current inputs. */
export interface ServiceSource {
  /** The Service if it exists and is ours (type LoadBalancer, our class); undefined otherwise. */
  service(id: string): V1Service | undefined;
  /** Its EndpointSlices. */
  slices(id: string): readonly V1EndpointSlice[];
  /** Its addresses as the ledger holds them. */
  allocations(uid: string): readonly AllocatedAddress[] | undefined;
}

/** What an update changed. */
export interface ModelDelta {
  /** Virtual services added or changed (new objects; unchanged ones are not listed). */
  set: DesiredVirtualService[];
  /** Keys no longer desired. */
  remove: string[];
  /** For every Service whose problems may have changed, all its current problems (empty: none). */
  problems: Map<string, ModelProblem[]>;
}

export class DesiredModel {
  private ctx: ModelContext | undefined;
  private readonly byId = new Map<string, ServiceModel>();
  /** Key → the Services asking for it, older first: the first one holds it. */
  private readonly claims = new Map<string, ServiceModel[]>();
  /** Key → the virtual service in the desired state (the holder's entry). */
  private readonly winners = new Map<string, DesiredVirtualService>();
  /** Services that lost a key, by id (their PortConflict problems). */
  private readonly losers = new Map<string, Set<string>>();

  /** When a NotReady node's grace period ends next: the state changes then, and a rebuild is due. */
  get nextDeadline(): number | undefined {
    return this.ctx?.nextDeadline;
  }

  /** Recomputes everything from the inputs; returns the whole state, like desiredState(). */
  rebuild(inputs: ModelInputs): DesiredState {
    const ctx = modelContext(inputs);
    this.ctx = ctx;
    this.byId.clear();
    this.claims.clear();
    this.winners.clear();
    this.losers.clear();
    const slices = slicesByService(inputs.endpointSlices);
    const models: ServiceModel[] = [];
    for (const svc of inputs.services) {
      const uid = svc.metadata?.uid;
      const m = serviceModel(ctx, svc, slices.get(serviceId(svc)) ?? [], uid ? inputs.allocations.get(uid) : undefined);
      if (m && !this.byId.has(m.id)) {
        this.byId.set(m.id, m);
        models.push(m);
      }
    }
    for (const m of models.sort(olderFirst)) {
      for (const e of m.entries) {
        const list = this.claims.get(e.key);
        if (list) {
          list.push(m);
          this.lose(m.id, e.key);
        } else {
          this.claims.set(e.key, [m]);
          this.winners.set(e.key, e);
        }
      }
    }
    return this.state();
  }

  /**
   * Recomputes the given Services (`namespace/name`) from `source`, against the environment of the last
   * rebuild, and settles the keys they ask for or gave up. Returns what changed.
   */
  updateServices(ids: Iterable<string>, source: ServiceSource): ModelDelta {
    const ctx = this.ctx;
    if (!ctx) throw new Error('DesiredModel.updateServices before the first rebuild');
    const touched = new Set<string>();
    const problemIds = new Set<string>();
    for (const id of ids) {
      problemIds.add(id);
      const old = this.byId.get(id);
      if (old) {
        for (const e of old.entries) {
          touched.add(e.key);
          const list = this.claims.get(e.key)!;
          list.splice(list.indexOf(old), 1);
          if (list.length === 0) this.claims.delete(e.key);
        }
        this.byId.delete(id);
      }
      const svc = source.service(id);
      const uid = svc?.metadata?.uid;
      const m = svc && serviceId(svc) === id ? serviceModel(ctx, svc, source.slices(id), uid ? source.allocations(uid) : undefined) : undefined;
      if (!m) continue;
      this.byId.set(id, m);
      for (const e of m.entries) {
        touched.add(e.key);
        const list = this.claims.get(e.key);
        if (!list) this.claims.set(e.key, [m]);
        else {
          // Almost always one claimant: a sorted insert without a sort.
          let i = list.length;
          while (i > 0 && olderFirst(list[i - 1]!, m) > 0) i--;
          list.splice(i, 0, m);
        }
      }
    }
    const set: DesiredVirtualService[] = [];
    const remove: string[] = [];
    for (const key of touched) {
      const list = this.claims.get(key);
      const before = this.winners.get(key);
      // Whoever lost or held this key before may now hold or lose it: their problems change.
      if (before) problemIds.add(before.service);
      for (const [id, keys] of this.losers) {
        if (!keys.delete(key)) continue;
        problemIds.add(id);
        if (keys.size === 0) this.losers.delete(id);
      }
      if (!list) {
        this.winners.delete(key);
        if (before) remove.push(key);
        continue;
      }
      const holder = list[0]!;
      const entry = holder.entries.find((e) => e.key === key)!;
      this.winners.set(key, entry);
      if (entry !== before) set.push(entry);
      for (let i = 1; i < list.length; i++) {
        this.lose(list[i]!.id, key);
        problemIds.add(list[i]!.id);
      }
      problemIds.add(holder.id);
    }
    const problems = new Map<string, ModelProblem[]>();
    for (const id of problemIds) problems.set(id, this.problemsOf(id));
    return { set, remove, problems };
  }

  /** The whole state, sorted by key, with every problem: what desiredState() returns for the same inputs. */
  state(): DesiredState {
    const virtualServices = [...this.winners.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const problems: ModelProblem[] = [];
    for (const m of [...this.byId.values()].sort(olderFirst)) problems.push(...this.problemsOf(m.id));
    return { virtualServices, problems };
  }

  /** One Service's problems: its own, then a PortConflict per key an older Service holds, in port order. */
  problemsOf(id: string): ModelProblem[] {
    const m = this.byId.get(id);
    if (!m) return [];
    const lost = this.losers.get(id);
    if (!lost) return m.problems;
    const out = [...m.problems];
    for (const e of m.entries) if (lost.has(e.key)) out.push(portConflict(id, e.key, this.winners.get(e.key)!.service));
    return out;
  }

  private lose(id: string, key: string): void {
    let keys = this.losers.get(id);
    if (!keys) this.losers.set(id, (keys = new Set()));
    keys.add(key);
  }
}
