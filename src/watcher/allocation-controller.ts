// Turns the cluster's Services into IPAM decisions and reports them back. The allocator (Lease holder)
// decides and writes status; every other LB host follows Service status into its own ledger, so all ledgers
// agree and any host can take over without moving an address.
//
// Order matters for durability: a decision is written to the ledger (one transaction per burst) before its
// status is patched, so an address that the cluster has seen is always on disk.
import type { V1Service } from '@kubernetes/client-node';
import type { Config } from '../config/types.js';
import { parseIp } from '../ipam/address.js';
import { parseService, parseServiceLeniently } from '../ipam/service.js';
import type { Decision, RequestedIp, ServiceRequest } from '../ipam/types.js';
import type { DurableIpam } from '../store/allocator.js';
import type { Logger } from '../util/log.js';
import type { ClusterWatcher } from './cluster.js';
import type { EventReason, EventRecorder } from './events.js';
import { isOurService } from './ours.js';
import type { StatusWriter } from './status.js';

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
  /** Called after each pass with the uids whose allocations changed (the kernel side recomputes). */
  onAllocationsChanged?: () => void;
  /** Decision plus ledger write time of a burst, and how many Services it decided (metrics). */
  onDecisions?: (ms: number, services: number) => void;
}

export interface AllocationStats {
  passes: number;
  decisions: number;
  refusals: number;
  released: number;
  followed: number;
  statusQueue: number;
  lastPassMs: number;
  /** Decision plus ledger write time per Service in the last pass, for the k8s benchmark. */
  lastDecisionMsPerService: number;
}

export class AllocationController {
  private running = false;
  private again = false;
  private started = false;
  private readonly lastProblem = new Map<string, string>();
  private readonly statusQueue = new Map<string, () => Promise<void>>();
  private statusWorkers = 0;
  readonly stats: AllocationStats = { passes: 0, decisions: 0, refusals: 0, released: 0, followed: 0, statusQueue: 0, lastPassMs: 0, lastDecisionMsPerService: 0 };
  private readonly now: () => number;

  constructor(private readonly o: AllocationControllerOptions) {
    this.now = o.now ?? Date.now;
  }

  /** Start-up (after the informers synced): load, re-confirm, release the gone, then decide the rest. */
  async start(): Promise<void> {
    await this.o.cluster.waitForSync();
    const { requests, byUid } = this.collect();
    // Every Service of ours is present, also one whose annotations do not parse: it keeps what it holds.
    const report = this.o.ipam.start(requests, { now: this.now(), term: this.o.term(), allocateNew: this.o.isLeader(), present: new Set(byUid.keys()) });
    this.o.log.info({ confirmed: report.confirmed.length, released: report.released.length, decided: report.decided.length, pending: report.pending.length }, 'ledger re-confirmed against the cluster');
    this.stats.released += report.released.length;
    this.publish(report.decided);
    this.started = true;
    this.o.onAllocationsChanged?.();
    this.schedule();
  }

  /** Coalesces triggers: at most one pass runs, and one more follows if anything changed meanwhile. */
  schedule(): void {
    if (!this.started) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    setImmediate(() => {
      try {
        this.pass();
      } catch (err) {
        this.o.log.error({ err: err instanceof Error ? err.message : String(err) }, 'allocation pass failed; will retry on the next change');
      } finally {
        this.running = false;
        if (this.again) {
          this.again = false;
          this.schedule();
        }
      }
    });
  }

  /** Every Service by uid, ours or not, as of the last collect(): lookups in a pass stay O(1). */
  private allByUid = new Map<string, V1Service>();

  private collect(): { requests: ServiceRequest[]; byUid: Map<string, V1Service> } {
    const requests: ServiceRequest[] = [];
    const byUid = new Map<string, V1Service>();
    this.allByUid = new Map();
    for (const svc of this.o.cluster.services.list()) {
      const uid = svc.metadata?.uid;
      if (!uid) continue;
      this.allByUid.set(uid, svc);
      if (!isOurService(svc, this.o.config.kubernetes)) continue;
      byUid.set(uid, svc);
      const parsed = parseService(svc, this.o.cluster.namespaceLabels(svc.metadata?.namespace ?? '') ?? {});
      if (!parsed.ok) {
        this.problem(svc, 'InvalidAnnotation', parsed.refusal.message);
        continue;
      }
      requests.push(parsed.service);
    }
    return { requests, byUid };
  }

  private pass(): void {
    const t0 = performance.now();
    const now = this.now();
    const term = this.o.term();
    const { requests, byUid } = this.collect();
    let changed = false;

    // Releases: Services that are gone, or no longer ours. Every host does this for its own ledger.
    const present = new Set(byUid.keys());
    const goneUids = this.o.ipam.ipam.uids().filter((uid) => !present.has(uid));
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
      for (const uid of goneUids) this.lastProblem.delete(uid);
    }

    if (this.o.isLeader()) {
      const pending = requests.filter((r) => !this.o.ipam.ipam.isSatisfied(r));
      if (pending.length > 0) {
        const d0 = performance.now();
        const decisions = this.o.ipam.ensure(pending, { now, term });
        const ms = performance.now() - d0;
        this.stats.lastDecisionMsPerService = ms / pending.length;
        this.o.onDecisions?.(ms, pending.length);
        changed ||= decisions.some((d) => d.changes.length > 0);
        this.publish(decisions);
      }
      // Repair status that drifted from the ledger (someone edited it, or a write was lost in an outage).
      for (const r of requests) {
        const svc = byUid.get(r.uid)!;
        const want = this.o.ipam.ipam.allocationsOf(r.uid).map((a) => a.address);
        const have = (svc.status?.loadBalancer?.ingress ?? []).map((i) => i.ip);
        if (want.length > 0 && (want.join(',') !== have.join(',') || svc.status?.loadBalancer?.ingress?.some((i) => i.ipMode !== 'VIP'))) {
          this.enqueueStatus(r.uid, () => this.writeStatus(r.uid));
        }
      }
    } else {
      // Follower: the allocator's status is the truth; record it so this host is ready to take over.
      const follow: { service: ServiceRequest; addresses: RequestedIp[] }[] = [];
      for (const r of requests) {
        const ingress = byUid.get(r.uid)?.status?.loadBalancer?.ingress ?? [];
        const addresses = ingress.flatMap((i) => {
          const ip = i.ip ? parseIp(i.ip) : undefined;
          return ip ? [{ family: ip.family, value: ip.value, address: i.ip! }] : [];
        });
        if (addresses.length === 0) continue;
        const held = this.o.ipam.ipam.allocationsOf(r.uid).map((a) => a.address).sort().join(',');
        // Also when only the facts changed (key, ports): a follower's ledger is what it decides by after a
        // takeover. Not when the new facts contradict the address (a key no longer shared with its
        // co-holders): the allocator moves such a Service, and the new status brings the change here.
        const ipam = this.o.ipam.ipam;
        if (held !== addresses.map((a) => a.address).sort().join(',') || (!ipam.factsCurrent(r) && ipam.holdsWhatItAsks(r))) follow.push({ service: r, addresses });
      }
      // A Service whose annotations stopped parsing keeps its address on the allocator (a refused request
      // changes nothing), so this host must hold it too: recorded under the request as far as it parses.
      const valid = new Set(requests.map((r) => r.uid));
      for (const [uid, svc] of byUid) {
        if (valid.has(uid)) continue;
        const addresses = (svc.status?.loadBalancer?.ingress ?? []).flatMap((i) => {
          const ip = i.ip ? parseIp(i.ip) : undefined;
          return ip ? [{ family: ip.family, value: ip.value, address: i.ip! }] : [];
        });
        const held = this.o.ipam.ipam.allocationsOf(uid).map((a) => a.address).sort().join(',');
        if (addresses.length === 0 || held === addresses.map((a) => a.address).sort().join(',')) continue;
        const lenient = parseServiceLeniently(svc, this.o.cluster.namespaceLabels(svc.metadata?.namespace ?? '') ?? {});
        if (lenient) follow.push({ service: lenient, addresses });
      }
      if (follow.length > 0) {
        const decisions = this.o.ipam.record(follow, { now, term });
        this.stats.followed += follow.length;
        changed = true;
        for (const d of decisions) if (!d.ok && d.refusal) this.o.log.warn({ uid: d.uid, refusal: d.refusal }, 'could not record the allocator\'s address in this ledger');
      }
    }
    this.stats.passes++;
    this.stats.lastPassMs = performance.now() - t0;
    if (changed) this.o.onAllocationsChanged?.();
  }

  /** Events and status for a burst of decisions; the ledger already holds them. */
  private publish(decisions: readonly Decision[]): void {
    for (const d of decisions) {
      this.stats.decisions++;
      const svc = this.serviceByUid(d.uid);
      if (!svc) continue;
      if (!d.ok && d.refusal) {
        this.stats.refusals++;
        const reason: EventReason = d.refusal.reason === 'SharingConflict' ? 'SharingConflict' : d.refusal.reason === 'InvalidAnnotation' ? 'InvalidAnnotation' : 'AllocationFailed';
        this.problem(svc, reason, `${d.refusal.reason}: ${d.refusal.message}`);
        continue;
      }
      this.lastProblem.delete(d.uid);
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
    await this.o.status.set(svc, addresses);
  }

  /** One pending status write per Service (the latest wins); a few workers drain the queue at the limiter's pace. */
  private enqueueStatus(uid: string, write: () => Promise<void>): void {
    this.statusQueue.set(uid, write);
    this.stats.statusQueue = this.statusQueue.size;
    while (this.statusWorkers < 8 && this.statusWorkers < this.statusQueue.size) {
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
        try {
          await write();
        } catch (err) {
          this.o.log.warn({ uid, err: err instanceof Error ? err.message : String(err) }, 'status write failed; retrying on the next pass');
          // The repair loop in pass() notices the drift and enqueues it again.
          setTimeout(() => this.schedule(), 1000).unref();
        }
      }
    } finally {
      this.statusWorkers--;
    }
  }

  /** Reports a problem once per distinct message, so a stuck Service does not repeat its Event every pass. */
  private problem(svc: V1Service, reason: EventReason, message: string): void {
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
