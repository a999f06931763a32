// The allocator the daemon uses: the pure IPAM engine kept in step with the ledger. Every call decides in
// memory, writes all resulting changes in one durable transaction, and only then returns the decisions, so
// whatever the caller reports (Service status, API) is already on disk. If the write fails, the in-memory
// state is rebuilt from the ledger and the error is thrown: nothing is half-applied.
//
// Start-up order (start()), the one Cilium adopted in PR #41147 after restarts reshuffled IPs:
//   1. open the ledger and load every allocation and quarantine into the engine: every address ever handed
//      out is taken before anything else happens;
//   2. re-confirm the allocations of the Services that still exist and still ask for what they hold, and
//      record the status addresses of Services the ledger does not know (new host, restored backup);
//   3. release the allocations of Services that are gone (deleted while every daemon was down);
//   4. only then decide for Services that changed their request or have no address yet (the allocator
//      only; a follower records what the allocator wrote into Service status instead).
// Steps 2-4 are one transaction. The Service list must be complete (informers synced): step 3 trusts it.
import type { PoolConfig } from '../config/types.js';
import { Ipam, type IpamOptions } from '../ipam/engine.js';
import type { Change, Decision, RequestedIp, ServiceRequest } from '../ipam/types.js';
import { Ledger } from './ledger.js';

export interface OpenOptions extends IpamOptions {
  path: string;
  host: string;
  pools: readonly PoolConfig[];
  now: number;
  /** Called with the changes of every transaction once they are durable (metrics). */
  onCommit?: (changes: readonly Change[]) => void;
}

export interface StartupOptions {
  now: number;
  term: number;
  /** False on a host that is not the allocator: confirm and release, but allocate nothing new. */
  allocateNew: boolean;
  /**
   * Addresses each Service already shows in its status (`status.loadBalancer.ingress`), by uid. A Service the
   * ledger does not know but whose status carries addresses (a new LB host, a ledger restored from an old
   * backup) keeps those addresses: they are recorded before anything new is decided, unless that would put
   * an address on two Services.
   */
  observed?: ReadonlyMap<string, RequestedIp[]>;
  /**
   * The uids of every Service that exists and is ours, also those whose request does not parse (a bad
   * annotation): they keep what they hold. Without it, only the uids of `services` count as present, and
   * a Service with a bad annotation would lose its address at every start-up while its status still shows it.
   */
  present?: ReadonlySet<string>;
}

export interface StartupReport {
  /** Services whose allocation was confirmed unchanged (step 2). */
  confirmed: Decision[];
  /** Services unknown to the ledger whose status addresses were recorded (step 2), and refused ones. */
  adopted: Decision[];
  /** Allocations released because their Service no longer exists (step 3). */
  released: Change[];
  /** Decisions for Services that needed a new or different address (step 4), including refusals. */
  decided: Decision[];
  /** Services left for later: allocateNew was false. */
  pending: ServiceRequest[];
}

export class DurableIpam {
  private constructor(
    readonly ledger: Ledger,
    private engine: Ipam,
    private pools: readonly PoolConfig[],
    private opts: IpamOptions,
    private readonly onCommit: ((changes: readonly Change[]) => void) | undefined,
  ) {}

  /** Opens the ledger and loads it into the engine (start-up step 1). Throws LedgerError for a bad file. */
  static open(o: OpenOptions): DurableIpam {
    const ledger = Ledger.open(o.path, { host: o.host });
    try {
      const engine = new Ipam(o.pools, { quarantineSeconds: o.quarantineSeconds }, ledger.load());
      ledger.recordPools(o.pools, { now: o.now, term: 0 });
      return new DurableIpam(ledger, engine, o.pools, { quarantineSeconds: o.quarantineSeconds }, o.onCommit);
    } catch (err) {
      ledger.close();
      throw err;
    }
  }

  /** The engine, for queries (allocations, orphans, pool stats). Mutate only through this class. */
  get ipam(): Ipam {
    return this.engine;
  }

  close(): void {
    this.ledger.close();
  }

  /** Start-up steps 2-4 (see the top of this file). */
  start(services: readonly ServiceRequest[], o: StartupOptions): StartupReport {
    return this.commit(o, () => {
      const report: StartupReport = { confirmed: [], adopted: [], released: [], decided: [], pending: [] };
      const changes: Change[] = [...this.engine.expire(o.now)];
      const present = new Set([...(o.present ?? []), ...services.map((s) => s.uid)]);
      const later: ServiceRequest[] = [];
      for (const svc of services) {
        const d = this.engine.confirm(svc);
        if (d) {
          if (d.changes.length > 0) changes.push(...d.changes);
          report.confirmed.push(d);
        } else later.push(svc);
      }
      const undecided: ServiceRequest[] = [];
      for (const svc of later) {
        const seen = o.observed?.get(svc.uid);
        if (seen && seen.length > 0 && this.engine.allocationsOf(svc.uid).length === 0) {
          const d = this.engine.record(svc, seen, o.now);
          changes.push(...d.changes);
          report.adopted.push(d);
          // A recorded address the Service now contradicts is decided again below, with the other holders.
          if (d.ok && this.engine.isSatisfied(svc)) continue;
        }
        undecided.push(svc);
      }
      for (const uid of this.engine.uids()) {
        if (present.has(uid)) continue;
        const c = this.engine.release(uid, o.now, 'ServiceGoneWhileDown');
        changes.push(...c);
        report.released.push(...c.filter((x) => x.kind === 'release'));
      }
      // Services that hold something but now ask for something else go before brand-new ones.
      const ordered = [...undecided.filter((s) => this.engine.allocationsOf(s.uid).length > 0), ...undecided.filter((s) => this.engine.allocationsOf(s.uid).length === 0)];
      for (const svc of ordered) {
        if (!o.allocateNew) {
          report.pending.push(svc);
          continue;
        }
        const d = this.engine.ensure(svc, o.now);
        changes.push(...d.changes);
        report.decided.push(d);
      }
      return { result: report, changes };
    });
  }

  /** Decides for a burst of Services; one transaction, one fsync. */
  ensure(services: readonly ServiceRequest[], o: { now: number; term: number }): Decision[] {
    return this.commit(o, () => {
      const decisions = services.map((s) => this.engine.ensure(s, o.now));
      return { result: decisions, changes: decisions.flatMap((d) => d.changes) };
    });
  }

  /** Releases the addresses of Services that were deleted, changed type, or moved to another class. */
  release(items: readonly { uid: string; reason: string }[], o: { now: number; term: number }): Change[] {
    return this.commit(o, () => {
      const changes = items.flatMap((i) => this.engine.release(i.uid, o.now, i.reason));
      return { result: changes, changes };
    });
  }

  /** A follower's path: what the allocator wrote into Service status, recorded into this host's ledger. */
  record(items: readonly { service: ServiceRequest; addresses: RequestedIp[] }[], o: { now: number; term: number }): Decision[] {
    return this.commit(o, () => {
      const decisions = items.map((i) => this.engine.record(i.service, i.addresses, o.now));
      return { result: decisions, changes: decisions.flatMap((d) => d.changes) };
    });
  }

  /** Ends quarantines that are over (call it from a timer so the ledger's quarantine table stays short). */
  expire(o: { now: number; term: number }): Change[] {
    return this.commit(o, () => {
      const changes = this.engine.expire(o.now);
      return { result: changes, changes };
    });
  }

  /** A validated config reload: new pools apply at once; nothing held moves (see ipam.orphans()). */
  reloadPools(pools: readonly PoolConfig[], opts: IpamOptions, o: { now: number; term: number }): void {
    this.ledger.recordPools(pools, o);
    this.pools = pools;
    this.opts = opts;
    this.engine.setPools(pools, opts);
  }

  private commit<T>(o: { now: number; term: number }, decide: () => { result: T; changes: Change[] }): T {
    const { result, changes } = decide();
    try {
      this.ledger.apply(changes, o);
    } catch (err) {
      // The engine is ahead of the disk: go back to what the disk holds, so no caller ever acts on an
      // allocation that a crash would forget.
      this.engine = new Ipam(this.pools, this.opts, this.ledger.load());
      throw err;
    }
    if (changes.length > 0) this.onCommit?.(changes);
    return result;
  }
}
