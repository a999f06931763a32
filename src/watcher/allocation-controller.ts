// Turns the cluster's Services into IPAM decisions and reports them back. The allocator (Lease holder)
// decides and writes status; every other LB host follows Service status into its own ledger, so all ledgers
// agree and any host can take over without moving an address.
//
// Order matters for durability: a decision is written to the ledger (one transaction per chunk) before its
// status is patched, so an address that the cluster has seen is always on disk. A burst is decided in chunks
// with the event loop free in between, so the first statuses go out while the rest is still being decided
// and a Lease renewal never waits behind 10,000 decisions.
//
// Passes are incremental: a Service change marks that Service, and the next pass looks at the marked ones
// only (with 10,000 Services, every status echo would otherwise cost a look at all of them). A full pass runs
// at start, when this host becomes the allocator, after every (re)list of Services or Namespaces (so the
// periodic resync is also a full check), on config reload and when quarantines end. Refused Services are
// looked at again whenever an allocation changed, since a release may be what they were waiting for.
import type { V1Service } from '@kubernetes/client-node';
import type { Config } from '../config/types.js';
import { parseIp } from '../ipam/address.js';
import { parseService, parseServiceLeniently, type ParsedService } from '../ipam/service.js';
import type { Decision, RequestedIp, ServiceRequest } from '../ipam/types.js';
import type { DurableIpam } from '../store/allocator.js';
import type { Logger } from '../util/log.js';
import type { ClusterWatcher } from './cluster.js';
import type { EventReason, EventRecorder } from './events.js';
import { isOurService } from './ours.js';
import type { StatusWriter } from './status.js';

/**
 * Services decided per ledger transaction. Measured on the development VM: 50 decisions take about 1 ms of CPU
 * (100 took 2.5), so a Service's decision plus durable write stays well under 10 ms with the fsync; 10,000
 * Services are 200 transactions, which the QPS budget spreads over a minute anyway.
 */
export const DECISION_CHUNK = 50;

export interface AllocationControllerOptions {
  config: Config;
  ipam: DurableIpam;
  cluster: ClusterWatcher;
  status: StatusWriter;
  events: EventRecorder;
  log: Logger;
  isLeader: () => boolean;
  term: () => number;
  now?: () => number;
  /** Called after each pass that changed allocations (the kernel side recomputes). */
  onAllocationsChanged?: () => void;
  /** Decision plus durable ledger write time of one transaction, and how many Services it decided (metrics). */
  onDecisions?: (ms: number, services: number) => void;
  /**
   * Status writes in flight at once (default 16); the rate limiter sets the pace, this only bounds concurrency.
   * It must not be the limit itself: 8 writes in flight at 45 ms per round trip (a busy API server) are only
   * 180 writes per second.
   */
  statusWorkers?: number;
}

export interface AllocationStats {
  passes: number;
  fullPasses: number;
  decisions: number;
  refusals: number;
  released: number;
  followed: number;
  statusQueue: number;
  statusWritten: number;
  statusFailed: number;
  lastPassMs: number;
}

const ingressAddresses = (svc: V1Service | undefined): string[] => (svc?.status?.loadBalancer?.ingress ?? []).flatMap((i) => (i.ip ? [i.ip] : []));

function observedIps(svc: V1Service): RequestedIp[] {
  return ingressAddresses(svc).flatMap((ip) => {
    const p = parseIp(ip);
    return p ? [{ family: p.family, value: p.value, address: ip }] : [];
  });
}

export class AllocationController {
  private running = false;
  private again = false;
  private started = false;
  private readonly lastProblem = new Map<string, string>();
  private readonly statusQueue = new Map<string, () => Promise<void>>();
  /** Services whose status write is being sent: the repair loop must not queue them again. */
  private readonly inFlight = new Set<string>();
  /**
   * After a write, the resourceVersion the cache held before it: until the watch brings the written object,
   * the cache still shows the old status, which is no reason to write again.
   */
  private readonly awaitingEcho = new Map<string, string | undefined>();
  /** Services changed since the last pass, by `namespace/name`, and the uids they had (a deletion's uid). */
  private readonly dirtyKeys = new Set<string>();
  private readonly dirtyUids = new Map<string, string>();
  private fullDue = true;
  /** Services whose last decision was a refusal, by uid: retried when allocations change. */
  private readonly refused = new Map<string, string>();
  /** Parsed requests by uid, valid while resourceVersion and the namespace's labels are unchanged. */
  private readonly parsed = new Map<string, { rv: string | undefined; nsRv: string | undefined; result: ParsedService }>();
  private statusWorkers = 0;
  readonly stats: AllocationStats = { passes: 0, fullPasses: 0, decisions: 0, refusals: 0, released: 0, followed: 0, statusQueue: 0, statusWritten: 0, statusFailed: 0, lastPassMs: 0 };
  private readonly now: () => number;

  constructor(private readonly o: AllocationControllerOptions) {
    this.now = o.now ?? Date.now;
  }

  /**
   * Start-up (after the informers synced): load, re-confirm, adopt what status already shows, release the
   * gone, then decide the rest.
   */
  async start(): Promise<void> {
    await this.o.cluster.waitForSync();
    const { requests, byUid } = this.collect(true);
    // The first pass looks at every Service, not only those changed since: start-up re-confirms the ledger,
    // but a follower follows a status only in a pass (its ledger may hold an address the allocator moved
    // while this host was down), and the allocator repairs a status whose write a crash cut off only in one.
    this.fullDue = true;
    const observed = new Map<string, RequestedIp[]>();
    for (const [uid, svc] of byUid) {
      const ips = observedIps(svc);
      if (ips.length > 0) observed.set(uid, ips);
    }
    const report = this.o.ipam.start(requests, { now: this.now(), term: this.o.term(), allocateNew: this.o.isLeader(), observed,
      // Every Service of ours is present, also one whose annotations do not parse: it keeps what it holds.
      present: new Set(byUid.keys()) });
    this.o.log.info({ confirmed: report.confirmed.length, adopted: report.adopted.length, released: report.released.length, decided: report.decided.length, pending: report.pending.length }, 'ledger re-confirmed against the cluster');
    for (const d of report.adopted) if (!d.ok && d.refusal) this.o.log.warn({ uid: d.uid, refusal: d.refusal }, 'could not adopt the address the Service shows in its status');
    // A host that first meets a Service when its annotations no longer parse (it was down while they went
    // bad) adopts the address its status shows; the incremental passes that follow would not look at it.
    const unparseable = this.unparseableToFollow(requests, byUid);
    if (unparseable.length > 0) {
      for (const d of this.o.ipam.record(unparseable, { now: this.now(), term: this.o.term() })) {
        if (!d.ok && d.refusal) this.o.log.warn({ uid: d.uid, refusal: d.refusal }, 'could not adopt the address an unparseable Service shows in its status');
      }
    }
    this.stats.released += report.released.length;
    this.publish(report.decided);
    this.started = true;
    this.o.onAllocationsChanged?.();
    this.schedule();
  }

  /** A Service was added, changed or deleted: the next pass looks at it. */
  noteService(svc: V1Service, old?: V1Service): void {
    for (const s of [svc, old]) {
      if (!s?.metadata) continue;
      const key = `${s.metadata.namespace ?? ''}/${s.metadata.name ?? ''}`;
      this.dirtyKeys.add(key);
      if (s.metadata.uid) this.dirtyUids.set(s.metadata.uid, key);
    }
    this.schedule();
  }

  /**
   * Coalesces triggers: at most one pass runs, and one more follows if anything changed meanwhile. `full`
   * asks for a look at every Service.
   */
  schedule(full = false): void {
    if (full) this.fullDue = true;
    if (!this.started) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    setImmediate(() => void this.runPasses());
  }

  private async runPasses(): Promise<void> {
    try {
      do {
        this.again = false;
        const t0 = performance.now();
        try {
          await this.pass();
        } catch (err) {
          this.o.log.error({ err: err instanceof Error ? err.message : String(err) }, 'allocation pass failed; retrying in 1 s');
          setTimeout(() => this.schedule(true), 1000).unref();
        }
        // Spaced by twice their cost, passes take at most a third of the CPU however fast changes arrive.
        if (this.again) await new Promise((r) => setTimeout(r, Math.min(1000, 2 * (performance.now() - t0))));
      } while (this.again);
    } finally {
      this.running = false;
    }
  }

  /** Every Service by uid, ours or not, as of the last collect(): lookups in a pass stay O(1). */
  private allByUid = new Map<string, V1Service>();

  /**
   * The Services to look at: every Service (full), or the changed ones. `byUid` holds those of them that are
   * ours; `gone` the uids among them that the ledger holds but that are no longer a Service of ours.
   */
  private collect(full: boolean): { requests: ServiceRequest[]; byUid: Map<string, V1Service>; gone: string[] } {
    const requests: ServiceRequest[] = [];
    const byUid = new Map<string, V1Service>();
    const consider = (svc: V1Service | undefined) => {
      const uid = svc?.metadata?.uid;
      if (!svc || !uid) return;
      this.allByUid.set(uid, svc);
      if (!isOurService(svc, this.o.config.kubernetes)) return;
      byUid.set(uid, svc);
      const parsed = this.parse(svc, uid);
      if (!parsed.ok) {
        this.problem(svc, 'InvalidAnnotation', parsed.refusal.message);
        return;
      }
      requests.push(parsed.service);
    };
    let gone: string[];
    if (full) {
      this.allByUid = new Map();
      for (const svc of this.o.cluster.services.list()) consider(svc);
      for (const uid of this.parsed.keys()) if (!byUid.has(uid)) this.parsed.delete(uid);
      gone = this.o.ipam.ipam.uids().filter((uid) => !byUid.has(uid));
    } else {
      const keys = new Set(this.dirtyKeys);
      for (const key of this.refused.values()) keys.add(key);
      for (const key of keys) {
        const slash = key.indexOf('/');
        consider(this.o.cluster.services.get(key.slice(0, slash), key.slice(slash + 1)));
      }
      gone = [];
      for (const uid of this.dirtyUids.keys()) {
        if (byUid.has(uid)) continue;
        this.allByUid.delete(uid);
        this.parsed.delete(uid);
        this.refused.delete(uid);
        if (this.o.ipam.ipam.allocationsOf(uid).length > 0) gone.push(uid);
        // Still in the API but not ours (type or class changed): keep it for the status clean-up below.
        const current = this.lookup(this.dirtyUids.get(uid)!);
        if (current?.metadata?.uid === uid) this.allByUid.set(uid, current);
      }
    }
    this.dirtyKeys.clear();
    this.dirtyUids.clear();
    return { requests, byUid, gone };
  }

  /**
   * A Service whose annotations stopped parsing keeps its address on the allocator (a refused request changes
   * nothing), so every host must hold it too: recorded under the request as far as it parses, at the address
   * its status shows.
   */
  private unparseableToFollow(requests: readonly ServiceRequest[], byUid: ReadonlyMap<string, V1Service>): { service: ServiceRequest; addresses: RequestedIp[] }[] {
    const follow: { service: ServiceRequest; addresses: RequestedIp[] }[] = [];
    const valid = new Set(requests.map((r) => r.uid));
    for (const [uid, svc] of byUid) {
      if (valid.has(uid)) continue;
      const addresses = observedIps(svc);
      const held = this.o.ipam.ipam.allocationsOf(uid).map((a) => a.address).sort().join(',');
      if (addresses.length === 0 || held === addresses.map((a) => a.address).sort().join(',')) continue;
      const lenient = parseServiceLeniently(svc, this.o.cluster.namespaceLabels(svc.metadata?.namespace ?? '') ?? {});
      if (lenient) follow.push({ service: lenient, addresses });
    }
    return follow;
  }

  private lookup(key: string): V1Service | undefined {
    const slash = key.indexOf('/');
    return this.o.cluster.services.get(key.slice(0, slash), key.slice(slash + 1));
  }

  private parse(svc: V1Service, uid: string): ParsedService {
    const ns = svc.metadata?.namespace ?? '';
    const nsRv = this.o.cluster.namespaces.get(undefined, ns)?.metadata?.resourceVersion;
    const rv = svc.metadata?.resourceVersion;
    const hit = this.parsed.get(uid);
    if (hit && hit.rv === rv && hit.nsRv === nsRv && rv !== undefined) return hit.result;
    const result = parseService(svc, this.o.cluster.namespaceLabels(ns) ?? {});
    this.parsed.set(uid, { rv, nsRv, result });
    return result;
  }

  private async pass(): Promise<void> {
    const t0 = performance.now();
    const now = this.now();
    const term = this.o.term();
    const full = this.fullDue;
    this.fullDue = false;
    const { requests, byUid, gone: goneUids } = this.collect(full);
    let changed = false;

    // Releases: Services that are gone, or no longer ours. Every host does this for its own ledger.
    if (goneUids.length > 0) {
      const released = this.o.ipam.release(goneUids.map((uid) => ({ uid, reason: 'ServiceGoneOrNotOurs' })), { now, term });
      changed = true;
      this.stats.released += released.length;
      if (this.o.isLeader()) {
        for (const c of released) {
          if (c.kind !== 'release') continue;
          const svc = this.allByUid.get(c.allocation.uid);
          // Still in the API but not ours any more (type or class changed): take our address back out of its status.
          if (svc) {
            this.enqueueStatus(c.allocation.uid, () => this.o.status.clear(svc, [c.allocation.address]).then(() => undefined));
            void this.o.events.record(svc, 'IPReleased', `released ${c.allocation.address}: the Service is no longer type LoadBalancer of class ${this.o.config.kubernetes.loadBalancerClass}`);
          }
        }
      }
      for (const uid of goneUids) {
        this.lastProblem.delete(uid);
        this.awaitingEcho.delete(uid);
        this.refused.delete(uid);
      }
    }

    if (this.o.isLeader()) {
      // Services that hold an address go before those that hold none (as at start-up): a holder's new ports
      // or key must be on record before a newcomer is judged against them. Decided the other way round, a
      // newcomer that came first in a relist shared the holder's address against its old ports, and the
      // holder's new ones were then refused: two Services on one VIP and port.
      const ipam = this.o.ipam.ipam;
      const unsatisfied = requests.filter((r) => !ipam.isSatisfied(r));
      const holds = (r: ServiceRequest) => ipam.allocationsOf(r.uid).length > 0;
      const pending = [...unsatisfied.filter(holds), ...unsatisfied.filter((r) => !holds(r))];
      for (let i = 0; i < pending.length && this.o.isLeader(); i += DECISION_CHUNK) {
        if (i > 0) await new Promise<void>((r) => setImmediate(r));
        // A Service that changed or went away while earlier chunks were decided waits for the next pass.
        const chunk = pending.slice(i, i + DECISION_CHUNK).filter((r) => this.current(byUid.get(r.uid)) !== undefined);
        if (chunk.length === 0) continue;
        const d0 = performance.now();
        const decisions = this.o.ipam.ensure(chunk, { now: this.now(), term });
        this.o.onDecisions?.(performance.now() - d0, chunk.length);
        changed ||= decisions.some((d) => d.changes.length > 0);
        this.publish(decisions);
      }
      // Repair status that drifted from the ledger (someone edited it, or a write was lost in an outage).
      for (const r of requests) {
        if (this.inFlight.has(r.uid) || this.statusQueue.has(r.uid)) continue;
        const svc = this.o.cluster.services.get(r.namespace, r.name);
        if (!svc || svc.metadata?.uid !== r.uid) continue;
        if (this.awaitingEcho.has(r.uid)) {
          if (this.awaitingEcho.get(r.uid) === svc.metadata?.resourceVersion) continue;
          this.awaitingEcho.delete(r.uid);
        }
        const want = this.o.ipam.ipam.allocationsOf(r.uid).map((a) => a.address);
        const have = ingressAddresses(svc);
        if (want.length > 0 && (want.join(',') !== have.join(',') || svc.status?.loadBalancer?.ingress?.some((i) => i.ipMode !== 'VIP'))) {
          this.enqueueStatus(r.uid, () => this.writeStatus(r.uid));
        }
      }
    } else {
      // Follower: the allocator's status is the truth; record it so this host is ready to take over.
      const follow: { service: ServiceRequest; addresses: RequestedIp[] }[] = [];
      for (const r of requests) {
        const addresses = observedIps(byUid.get(r.uid)!);
        if (addresses.length === 0) continue;
        const held = this.o.ipam.ipam.allocationsOf(r.uid).map((a) => a.address).sort().join(',');
        // Also when only the facts changed (key, ports): a follower's ledger is what it decides by after a
        // takeover. Not when the new facts contradict the address (a key no longer shared with its
        // co-holders): the allocator moves such a Service, and the new status brings the change here.
        const ipam = this.o.ipam.ipam;
        if (held !== addresses.map((a) => a.address).sort().join(',') || (!ipam.factsCurrent(r) && ipam.holdsWhatItAsks(r))) follow.push({ service: r, addresses });
      }
      follow.push(...this.unparseableToFollow(requests, byUid));
      if (follow.length > 0) {
        const decisions = this.o.ipam.record(follow, { now, term });
        this.stats.followed += follow.length;
        changed = true;
        for (const d of decisions) if (!d.ok && d.refusal) this.o.log.warn({ uid: d.uid, refusal: d.refusal }, 'could not record the allocator\'s address in this ledger');
      }
    }
    this.stats.passes++;
    if (full) this.stats.fullPasses++;
    this.stats.lastPassMs = performance.now() - t0;
    if (changed) {
      this.o.onAllocationsChanged?.();
      // A release may be what a refused Service was waiting for: look at those again.
      if (this.refused.size > 0) this.schedule();
    }
  }

  /** The cached Service if it is still the one collected (same uid and resourceVersion). */
  private current(collected: V1Service | undefined): V1Service | undefined {
    if (!collected) return undefined;
    const now = this.o.cluster.services.get(collected.metadata?.namespace, collected.metadata?.name ?? '');
    return now?.metadata?.uid === collected.metadata?.uid && now?.metadata?.resourceVersion === collected.metadata?.resourceVersion ? now : undefined;
  }

  /** Events and status for a burst of decisions; the ledger already holds them. */
  private publish(decisions: readonly Decision[]): void {
    for (const d of decisions) {
      this.stats.decisions++;
      const svc = this.serviceByUid(d.uid);
      if (!svc) continue;
      if (!d.ok && d.refusal) {
        this.stats.refusals++;
        this.refused.set(d.uid, `${svc.metadata?.namespace ?? ''}/${svc.metadata?.name ?? ''}`);
        const reason: EventReason = d.refusal.reason === 'SharingConflict' ? 'SharingConflict' : d.refusal.reason === 'InvalidAnnotation' ? 'InvalidAnnotation' : 'AllocationFailed';
        this.problem(svc, reason, `${d.refusal.reason}: ${d.refusal.message}`);
        continue;
      }
      this.lastProblem.delete(d.uid);
      this.refused.delete(d.uid);
      for (const c of d.changes) {
        if (c.kind === 'allocate') void this.o.events.record(svc, 'IPAllocated', `allocated ${c.allocation.address} from pool ${c.allocation.pool}`);
        if (c.kind === 'release') void this.o.events.record(svc, 'IPReleased', `released ${c.allocation.address}: ${c.reason}`);
      }
      for (const g of d.degraded) void this.o.events.record(svc, 'AllocationFailed', `served on fewer families than asked: ${g.reason}: ${g.message}`);
      this.enqueueStatus(d.uid, () => this.writeStatus(d.uid));
    }
  }

  private serviceByUid(uid: string): V1Service | undefined {
    const cached = this.allByUid.get(uid);
    // The cache may hold a newer object than the last pass saw; prefer the informer's current one.
    const current = cached ? this.o.cluster.services.get(cached.metadata?.namespace, cached.metadata?.name ?? '') : undefined;
    return current?.metadata?.uid === uid ? current : undefined;
  }

  private async writeStatus(uid: string): Promise<void> {
    if (!this.o.isLeader()) return;
    const svc = this.serviceByUid(uid);
    if (!svc) return;
    const addresses = this.o.ipam.ipam.allocationsOf(uid).map((a) => a.address);
    if (addresses.length === 0) return;
    const result = await this.o.status.set(svc, addresses);
    if (result === 'written') {
      this.stats.statusWritten++;
      this.awaitingEcho.set(uid, svc.metadata?.resourceVersion);
    }
  }

  /** One pending status write per Service (the latest wins); a few workers drain the queue at the limiter's pace. */
  private enqueueStatus(uid: string, write: () => Promise<void>): void {
    this.statusQueue.set(uid, write);
    this.stats.statusQueue = this.statusQueue.size;
    while (this.statusWorkers < (this.o.statusWorkers ?? 16) && this.statusWorkers < this.statusQueue.size) {
      this.statusWorkers++;
      void this.drain();
    }
  }

  private async drain(): Promise<void> {
    try {
      for (;;) {
        const next = this.statusQueue.entries().next();
        if (next.done) return;
        const [uid, write] = next.value;
        this.statusQueue.delete(uid);
        this.stats.statusQueue = this.statusQueue.size;
        this.inFlight.add(uid);
        try {
          await write();
        } catch (err) {
          this.stats.statusFailed++;
          this.o.log.warn({ uid, err: err instanceof Error ? err.message : String(err) }, 'status write failed; retrying in 1 s');
          // The repair loop in pass() notices the drift of a marked Service and enqueues it again.
          setTimeout(() => {
            const svc = this.allByUid.get(uid);
            if (svc) this.noteService(svc);
          }, 1000).unref();
        } finally {
          this.inFlight.delete(uid);
        }
      }
    } finally {
      this.statusWorkers--;
    }
  }

  /**
   * Reports a problem as an Event, once per distinct message, and only from the allocator: every host sees
   * the same problem, and one Event is enough.
   */
  private problem(svc: V1Service, reason: EventReason, message: string): void {
    if (!this.o.isLeader()) return;
    const uid = svc.metadata?.uid ?? '';
    if (this.lastProblem.get(uid) === message) return;
    this.lastProblem.set(uid, message);
    this.o.log.warn({ service: `${svc.metadata?.namespace}/${svc.metadata?.name}`, reason, message }, 'service problem');
    void this.o.events.record(svc, reason, message);
  }

  get statusPending(): number {
    return this.statusQueue.size + this.statusWorkers;
  }
}
