// The allocator: a deterministic state machine over (pools, allocations, quarantine). Every input, including
// the current time, is an argument, so the same sequence of calls gives the same answers on every host and
// after every restart. Each call returns the changes it made; the ledger persists exactly those.
//
// Rules (docs/ipam.md has the long form):
// - A Service keeps what it holds while its request stays compatible with it (same requested address and
//   pool, sharing still legal). Pool edits, reorderings and selector changes never move an address.
// - New addresses: the requested one, or the lowest free address of the first matching pool in priority order.
// - A decision is all or nothing: a refused request leaves the Service with what it held.
import type { PoolConfig } from '../config/types.js';
import { type Family, formatIp } from './address.js';
import { ExpiryHeap } from './heap.js';
import { IntervalSet } from './intervals.js';
import { autoAssignPools, orderPools, poolAllows } from './pools.js';
import { type AddressRange, isBuggyIPv4, isSubnetRouterAnycast, rangeContains, usableCount } from './range.js';
import type { Allocation, Change, Decision, QuarantineEntry, Refusal, RequestedIp, ServiceRequest } from './types.js';

export interface IpamOptions {
  /** How long a released address waits before it can be handed out again. */
  quarantineSeconds: number;
}

export interface IpamSnapshot {
  allocations: Allocation[];
  quarantine: QuarantineEntry[];
}

interface Holding {
  family: Family;
  value: bigint;
  address: string;
  pool: string;
  sharingKey: string | undefined;
  /** Usually one; several only for a shared address. */
  owners: Allocation[];
}

interface PoolRuntime {
  config: PoolConfig;
  order: number;
  ranges: Record<Family, AddressRange[]>;
  /** Per family, a value below which every address of the pool is taken (or avoided): where searches start. */
  hint: Record<Family, bigint>;
}

interface RangeRef {
  first: bigint;
  last: bigint;
  anycastFirst?: true;
  pool: PoolRuntime;
}

type Pick = { ok: true; value: bigint; address: string; pool: string } | { ok: false; refusal: Refusal };

export interface OrphanedAddress {
  address: string;
  family: Family;
  /** The pool recorded at allocation time; it no longer contains the address, or no longer exists. */
  pool: string;
  services: string[];
}

export interface PoolStats {
  name: string;
  /** Usable addresses (avoidBuggyIPs applied); a bigint because an IPv6 pool can be 2^64 or more. */
  size: bigint;
  used: number;
  quarantined: number;
  orphaned: number;
}

// Maps are keyed by the canonical address text, which every Allocation and QuarantineEntry already carries
// (and which cannot collide across families); only lookups by value pay for formatting.
const keyOf = (family: Family, value: bigint): string => formatIp({ family, value });
const famName = (f: Family) => (f === 4 ? 'IPv4' : 'IPv6');
const who = (a: { namespace: string; name: string }) => `${a.namespace}/${a.name}`;

function portsOverlap(a: readonly string[], b: readonly string[]): string | undefined {
  if (a.length === 0 || b.length === 0) return undefined;
  const set = new Set(a);
  return b.find((p) => set.has(p));
}

const sameList = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

export class Ipam {
  private ordered: PoolConfig[] = [];
  private pools = new Map<string, PoolRuntime>();
  private rangeIndex: Record<Family, RangeRef[]> = { 4: [], 6: [] };
  private quarantineMs: number;
  private byUid = new Map<string, Allocation[]>();
  private holdings = new Map<string, Holding>();
  private bySharingKey = new Map<string, Set<string>>();
  private quarantine = new Map<string, QuarantineEntry>();
  private expiries = new ExpiryHeap();
  /** Allocated or quarantined, per family: what automatic assignment must skip. */
  private taken: Record<Family, IntervalSet> = { 4: new IntervalSet(), 6: new IntervalSet() };

  constructor(pools: readonly PoolConfig[], opts: IpamOptions, snapshot?: IpamSnapshot) {
    this.quarantineMs = opts.quarantineSeconds * 1000;
    if (snapshot) {
      for (const a of snapshot.allocations) this.addOwner(a, false);
      for (const q of snapshot.quarantine) {
        const k = q.address;
        if (this.holdings.has(k)) continue;
        this.quarantine.set(k, q);
        this.expiries.push(q);
      }
      for (const f of [4, 6] as Family[]) {
        const values: bigint[] = [];
        for (const h of this.holdings.values()) if (h.family === f) values.push(h.value);
        for (const q of this.quarantine.values()) if (q.family === f) values.push(q.value);
        values.sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
        this.taken[f] = IntervalSet.fromSorted(values);
      }
    }
    this.setPools(pools, opts);
  }

  /** Applies a new pool configuration. Nothing held moves: addresses outside their pool become orphans. */
  setPools(pools: readonly PoolConfig[], opts?: IpamOptions): void {
    if (opts) this.quarantineMs = opts.quarantineSeconds * 1000;
    this.ordered = orderPools(pools);
    this.pools.clear();
    this.rangeIndex = { 4: [], 6: [] };
    pools.forEach((config, order) => {
      const ranges: Record<Family, AddressRange[]> = {
        4: config.addresses.filter((r) => r.family === 4).sort((a, b) => (a.first < b.first ? -1 : 1)),
        6: config.addresses.filter((r) => r.family === 6).sort((a, b) => (a.first < b.first ? -1 : 1)),
      };
      const rt: PoolRuntime = { config, order, ranges, hint: { 4: ranges[4][0]?.first ?? 0n, 6: ranges[6][0]?.first ?? 0n } };
      this.pools.set(config.name, rt);
      for (const f of [4, 6] as Family[]) for (const r of ranges[f]) this.rangeIndex[f].push({ first: r.first, last: r.last, ...(r.anycastFirst ? { anycastFirst: true as const } : {}), pool: rt });
    });
    for (const f of [4, 6] as Family[]) this.rangeIndex[f].sort((a, b) => (a.first < b.first ? -1 : 1));
  }

  // ---- decisions -------------------------------------------------------------------------------------

  /**
   * Makes sure the Service holds addresses that satisfy its request: confirms what it holds, allocates what
   * is missing, moves what it now contradicts. Refused requests change nothing for this Service.
   */
  ensure(svc: ServiceRequest, now: number): Decision {
    const changes = this.expire(now);
    const held = this.byUid.get(svc.uid) ?? [];
    const keep = new Map<Family, Allocation>();
    const need: Family[] = [];
    for (const f of svc.ipFamilies) {
      const a = held.find((x) => x.family === f);
      if (a && this.compatible(a, svc)) keep.set(f, a);
      else need.push(f);
    }
    const picks = new Map<Family, Pick & { ok: true }>();
    const failures = new Map<Family, Refusal>();
    for (const f of need) {
      const p = this.choose(svc, f);
      if (p.ok) picks.set(f, p);
      else failures.set(f, p.refusal);
    }
    const refuse = (refusal: Refusal): Decision => ({ uid: svc.uid, ok: false, allocations: this.ordered4(held, svc), refusal, degraded: [], changes });
    // A family the Service holds but now contradicts must get its new address, or nothing changes at all.
    for (const [f, r] of failures) if (held.some((a) => a.family === f)) return refuse(r);
    let degraded: Refusal[] = [];
    if (failures.size > 0) {
      if (svc.ipFamilyPolicy === 'RequireDualStack') {
        const [f, r] = [...failures][0]!;
        return refuse({ ...r, reason: 'FamilyUnavailable', family: f, message: `RequireDualStack needs an ${famName(f)} address: ${r.message}` });
      }
      if (keep.size + picks.size === 0) return refuse(failures.get(svc.ipFamilies[0]!)!);
      degraded = [...failures.values()];
    }
    for (const a of held) if (!svc.ipFamilies.includes(a.family)) this.doRelease(a, now, 'FamilyNoLongerRequested', changes);
    for (const [, a] of keep) this.refresh(a, svc, changes);
    for (const [f, p] of picks) {
      const old = held.find((a) => a.family === f);
      if (old && old.value === p.value) {
        this.refresh(old, svc, changes, p.pool);
        continue;
      }
      if (old) this.doRelease(old, now, 'Reassigned', changes);
      this.doAllocate(svc, f, p, now, old ? 'RequestChanged' : 'Allocated', changes);
    }
    return { uid: svc.uid, ok: true, allocations: this.ordered4(this.byUid.get(svc.uid) ?? [], svc), refusal: undefined, degraded, changes };
  }

  /**
   * True when the Service already holds an address for every family it wants, every one of them is
   * compatible with its request, and the ledger records the request as it is now (sharing key, ports,
   * names): ensure() would then change nothing. The recorded facts matter as much as the address: they are
   * what the next Service that asks to share is judged against (a key the Service dropped, still on record,
   * would let another Service in).
   */
  isSatisfied(svc: ServiceRequest): boolean {
    return this.holdsWhatItAsks(svc) && this.factsCurrent(svc);
  }

  /** Whether every allocation of the Service records its current namespace, name, sharing key and ports. */
  factsCurrent(svc: ServiceRequest): boolean {
    return (this.byUid.get(svc.uid) ?? []).every((a) => a.namespace === svc.namespace && a.name === svc.name && a.sharingKey === svc.sharingKey && sameList(a.ports, svc.ports));
  }

  /** Whether the Service holds an address for every family it wants, each compatible with its request. */
  holdsWhatItAsks(svc: ServiceRequest): boolean {
    const held = this.byUid.get(svc.uid) ?? [];
    if (held.length !== svc.ipFamilies.length) return false;
    return svc.ipFamilies.every((f) => {
      const a = held.find((x) => x.family === f);
      return a !== undefined && this.compatible(a, svc);
    });
  }

  /**
   * Start-up's re-confirmation: when the Service holds what it asks for, brings the recorded facts up to
   * date and returns the decision; otherwise returns undefined and changes nothing.
   */
  confirm(svc: ServiceRequest): Decision | undefined {
    if (!this.holdsWhatItAsks(svc)) return undefined;
    const changes: Change[] = [];
    // refresh() replaces the list rather than mutating it, so iterating the current one is safe.
    for (const a of this.byUid.get(svc.uid) ?? []) this.refresh(a, svc, changes);
    return { uid: svc.uid, ok: true, allocations: this.ordered4(this.byUid.get(svc.uid) ?? [], svc), refusal: undefined, degraded: [], changes };
  }

  /** Releases everything the Service holds (deleted, no longer LoadBalancer, or no longer ours). */
  release(uid: string, now: number, reason: string): Change[] {
    const changes = this.expire(now);
    for (const a of [...(this.byUid.get(uid) ?? [])]) this.doRelease(a, now, reason, changes);
    return changes;
  }

  /**
   * Records addresses another LB host (the allocator) already gave the Service, as seen in its status. Pool
   * rules and quarantine do not apply (the allocator applied them); double use still does.
   */
  record(svc: ServiceRequest, addresses: RequestedIp[], now: number): Decision {
    const changes = this.expire(now);
    const held = this.byUid.get(svc.uid) ?? [];
    for (const r of addresses) {
      if (held.some((a) => a.value === r.value && a.family === r.family)) continue;
      const conflict = this.shareCheck(r.family, r.value, r.address, svc);
      if (conflict) return { uid: svc.uid, ok: false, allocations: held, refusal: conflict, degraded: [], changes };
    }
    for (const a of held) if (!addresses.some((r) => r.family === a.family && r.value === a.value)) this.doRelease(a, now, 'ObservedRelease', changes);
    for (const r of addresses) {
      const mine = (this.byUid.get(svc.uid) ?? []).find((a) => a.family === r.family && a.value === r.value);
      if (mine) this.refresh(mine, svc, changes);
      else {
        const pool = this.rangeAt(r.family, r.value)?.pool.config.name ?? '';
        this.doAllocate(svc, r.family, { value: r.value, address: formatIp(r), pool }, now, 'Observed', changes);
      }
    }
    return { uid: svc.uid, ok: true, allocations: this.byUid.get(svc.uid) ?? [], refusal: undefined, degraded: [], changes };
  }

  /** Ends the quarantines that are over at `now`. Every other call does this first. */
  expire(now: number): Change[] {
    const changes: Change[] = [];
    while (this.expiries.length > 0 && this.expiries.peek()!.until <= now) {
      const e = this.expiries.pop()!;
      const k = e.address;
      if (this.quarantine.get(k) !== e) continue;
      this.quarantine.delete(k);
      if (!this.holdings.has(k)) this.free(e.family, e.value);
      changes.push({ kind: 'unquarantine', entry: e, reason: 'QuarantineOver' });
    }
    return changes;
  }

  // ---- queries --------------------------------------------------------------------------------------

  allocationsOf(uid: string): Allocation[] {
    return this.byUid.get(uid) ?? [];
  }

  *allocations(): IterableIterator<Allocation> {
    for (const list of this.byUid.values()) yield* list;
  }

  get serviceCount(): number {
    return this.byUid.size;
  }

  uids(): string[] {
    return [...this.byUid.keys()];
  }

  /** The Services holding an address (more than one only when shared). */
  holders(family: Family, value: bigint): Allocation[] {
    return [...(this.holdings.get(keyOf(family, value))?.owners ?? [])];
  }

  quarantined(): QuarantineEntry[] {
    return [...this.quarantine.values()];
  }

  isQuarantined(family: Family, value: bigint): boolean {
    return this.quarantine.has(keyOf(family, value));
  }

  /** The configured pool whose ranges contain the address, if any. */
  poolOf(family: Family, value: bigint): string | undefined {
    return this.rangeAt(family, value)?.pool.config.name;
  }

  /** Addresses held outside the ranges of the pool they came from (edited or removed pools), per pool. */
  orphans(): Map<string, OrphanedAddress[]> {
    const out = new Map<string, OrphanedAddress[]>();
    for (const h of this.holdings.values()) {
      const rt = this.pools.get(h.pool);
      if (rt && rt.ranges[h.family].some((r) => rangeContains(r, h.family, h.value))) continue;
      const list = out.get(h.pool) ?? [];
      list.push({ address: h.address, family: h.family, pool: h.pool, services: h.owners.map(who).sort() });
      out.set(h.pool, list);
    }
    for (const list of out.values()) list.sort((a, b) => a.family - b.family || (a.address < b.address ? -1 : 1));
    return out;
  }

  poolStats(): PoolStats[] {
    const stats = new Map<string, PoolStats>();
    for (const rt of this.pools.values()) {
      const size = rt.config.addresses.reduce((s, r) => s + usableCount(r, rt.config.avoidBuggyIPs), 0n);
      stats.set(rt.config.name, { name: rt.config.name, size, used: 0, quarantined: 0, orphaned: 0 });
    }
    for (const h of this.holdings.values()) {
      const inside = this.rangeAt(h.family, h.value)?.pool.config.name;
      if (inside) stats.get(inside)!.used++;
      if (inside !== h.pool) {
        const s = stats.get(h.pool);
        if (s) s.orphaned++;
      }
    }
    for (const q of this.quarantine.values()) {
      const inside = this.rangeAt(q.family, q.value)?.pool.config.name;
      if (inside) stats.get(inside)!.quarantined++;
    }
    return this.ordered.map((p) => stats.get(p.name)!);
  }

  // ---- internals ------------------------------------------------------------------------------------

  private ordered4(list: Allocation[], svc: ServiceRequest): Allocation[] {
    if (list.length < 2) return list;
    const rank = (f: Family) => {
      const i = svc.ipFamilies.indexOf(f);
      return i < 0 ? 9 : i;
    };
    return [...list].sort((a, b) => rank(a.family) - rank(b.family));
  }

  private compatible(a: Allocation, svc: ServiceRequest): boolean {
    const req = svc.requestedIPs.find((r) => r.family === a.family);
    if (req && req.value !== a.value) return false;
    if (svc.requestedPool !== undefined && svc.requestedPool !== a.pool) return false;
    const h = this.holdings.get(a.address)!;
    if (h.owners.length > 1) {
      if (svc.sharingKey === undefined || svc.sharingKey !== h.sharingKey) return false;
      for (const o of h.owners) if (o.uid !== svc.uid && portsOverlap(o.ports, svc.ports)) return false;
    }
    return true;
  }

  /** Why the Service may not use this address now that others hold it, or undefined when it may. */
  private shareCheck(family: Family, value: bigint, address: string, svc: ServiceRequest): Refusal | undefined {
    const h = this.holdings.get(address);
    if (!h) return undefined;
    const others = h.owners.filter((o) => o.uid !== svc.uid);
    if (others.length === 0) return undefined;
    const holder = who(others[0]!);
    if (svc.sharingKey === undefined || h.sharingKey === undefined) {
      const why = svc.sharingKey === undefined ? 'this Service has no ipvs-lb.io/allow-shared-ip key' : `${holder} does not allow sharing`;
      return { reason: 'RequestedAddressInUse', family, address, conflictsWith: holder, message: `${address} is in use by ${holder} (${why})` };
    }
    if (svc.sharingKey !== h.sharingKey) {
      return { reason: 'SharingConflict', family, address, conflictsWith: holder, message: `${address} is shared under key "${h.sharingKey}", not "${svc.sharingKey}" (held by ${holder})` };
    }
    for (const o of others) {
      const port = portsOverlap(o.ports, svc.ports);
      if (port) return { reason: 'SharingConflict', family, address, conflictsWith: who(o), message: `${port} on ${address} is already used by ${who(o)}` };
    }
    return undefined;
  }

  private choose(svc: ServiceRequest, family: Family): Pick {
    const fail = (refusal: Refusal): Pick => ({ ok: false, refusal: { family, ...refusal } });
    if (svc.requestedPool !== undefined && !this.pools.has(svc.requestedPool)) {
      return fail({ reason: 'UnknownPool', pool: svc.requestedPool, message: `no pool is named "${svc.requestedPool}" (pools: ${this.ordered.map((p) => p.name).join(', ')})` });
    }
    const req = svc.requestedIPs.find((r) => r.family === family);
    if (req) return this.chooseRequested(svc, req);

    let candidates: PoolConfig[];
    if (svc.requestedPool !== undefined) {
      const p = this.pools.get(svc.requestedPool)!.config;
      if (!poolAllows(p, svc)) return fail({ reason: 'PoolNotAllowed', pool: p.name, message: `pool "${p.name}" does not serve Services of namespace ${svc.namespace} with these labels (serviceAllocation)` });
      candidates = [p];
    } else {
      candidates = autoAssignPools(this.ordered, svc);
      if (candidates.length === 0) {
        return fail({ reason: 'PoolNotAllowed', message: `no pool open to automatic assignment serves Services of namespace ${svc.namespace} with these labels` });
      }
    }
    const withFamily = candidates.map((p) => this.pools.get(p.name)!).filter((rt) => rt.ranges[family].length > 0);
    if (withFamily.length === 0) {
      return fail({ reason: 'FamilyUnavailable', message: `no ${famName(family)} addresses in ${candidates.length === 1 ? `pool "${candidates[0]!.name}"` : `the pools that serve this Service (${candidates.map((p) => p.name).join(', ')})`}` });
    }
    if (svc.sharingKey !== undefined) {
      const shared = this.findShareable(svc, family, withFamily);
      if (shared) return shared;
    }
    for (const rt of withFamily) {
      const v = this.lowestFree(rt, family);
      if (v !== undefined) return { ok: true, value: v, address: formatIp({ family, value: v }), pool: rt.config.name };
    }
    return fail({ reason: 'PoolExhausted', message: `no free ${famName(family)} address in ${withFamily.map((rt) => `"${rt.config.name}"`).join(', ')}` });
  }

  private chooseRequested(svc: ServiceRequest, req: RequestedIp): Pick {
    const { family, value, address } = req;
    const fail = (refusal: Refusal): Pick => ({ ok: false, refusal: { family, address, ...refusal } });
    const ref = this.rangeAt(family, value);
    if (!ref) return fail({ reason: 'RequestedAddressOutsidePools', message: `${address} is in no configured pool` });
    const pool = ref.pool.config;
    if (svc.requestedPool !== undefined && pool.name !== svc.requestedPool) {
      return fail({ reason: 'RequestedAddressOutsidePools', pool: svc.requestedPool, message: `${address} is in pool "${pool.name}", not in the requested pool "${svc.requestedPool}"` });
    }
    if (!poolAllows(pool, svc)) return fail({ reason: 'PoolNotAllowed', pool: pool.name, message: `pool "${pool.name}" of ${address} does not serve Services of namespace ${svc.namespace} with these labels (serviceAllocation)` });
    if (pool.avoidBuggyIPs && isBuggyIPv4(family, value)) {
      return fail({ reason: 'RequestedAddressOutsidePools', pool: pool.name, message: `${address} ends in .0 or .255, which pool "${pool.name}" never hands out (avoidBuggyIPs)` });
    }
    if (isSubnetRouterAnycast(ref, value)) {
      return fail({ reason: 'RequestedAddressOutsidePools', pool: pool.name, message: `${address} is the Subnet-Router anycast address of an IPv6 CIDR in pool "${pool.name}" (every router on the link answers it), which no pool hands out` });
    }
    const conflict = this.shareCheck(family, value, address, svc);
    if (conflict) return fail(conflict);
    const q = this.quarantine.get(address);
    if (q && q.releasedBy !== who(svc) && !this.holdings.has(address)) {
      return fail({ reason: 'RequestedAddressInUse', pool: pool.name, conflictsWith: q.releasedBy, message: `${address} was released by ${q.releasedBy} and is in quarantine until ${new Date(q.until).toISOString()}` });
    }
    return { ok: true, value, address, pool: pool.name };
  }

  /** The lowest address already shared under the Service's key that it can join: pool priority, then value. */
  private findShareable(svc: ServiceRequest, family: Family, pools: PoolRuntime[]): Pick | undefined {
    const keys = this.bySharingKey.get(svc.sharingKey!);
    if (!keys) return undefined;
    let best: { rank: number; h: Holding } | undefined;
    for (const k of keys) {
      const h = this.holdings.get(k)!;
      if (h.family !== family) continue;
      const ref = this.rangeAt(family, h.value);
      // Orphaned addresses are kept for their holders but not handed to anyone new.
      if (!ref || ref.pool.config.name !== h.pool) continue;
      // Nor is an address the pool has since started to avoid.
      if (ref.pool.config.avoidBuggyIPs && isBuggyIPv4(family, h.value)) continue;
      if (isSubnetRouterAnycast(ref, h.value)) continue;
      const rank = pools.indexOf(ref.pool);
      if (rank < 0 || (best && (rank > best.rank || (rank === best.rank && h.value > best.h.value)))) continue;
      if (this.shareCheck(family, h.value, h.address, svc)) continue;
      best = { rank, h };
    }
    return best && { ok: true, value: best.h.value, address: best.h.address, pool: best.h.pool };
  }

  private lowestFree(rt: PoolRuntime, family: Family): bigint | undefined {
    const taken = this.taken[family];
    const avoid = rt.config.avoidBuggyIPs && family === 4;
    let end = 0n;
    for (const r of rt.ranges[family]) {
      end = r.last;
      if (r.last < rt.hint[family]) continue;
      let c = r.first > rt.hint[family] ? r.first : rt.hint[family];
      while (c <= r.last) {
        c = taken.nextAbsent(c);
        if (c > r.last) break;
        if ((avoid && isBuggyIPv4(family, c)) || isSubnetRouterAnycast(r, c)) {
          c++;
          continue;
        }
        rt.hint[family] = c;
        return c;
      }
    }
    rt.hint[family] = end + 1n;
    return undefined;
  }

  private rangeAt(family: Family, value: bigint): RangeRef | undefined {
    const idx = this.rangeIndex[family];
    let lo = 0;
    let hi = idx.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = idx[mid]!;
      if (value < r.first) hi = mid - 1;
      else if (value > r.last) lo = mid + 1;
      else return r;
    }
    return undefined;
  }

  private free(family: Family, value: bigint): void {
    this.taken[family].delete(value);
    const ref = this.rangeAt(family, value);
    if (ref && ref.pool.hint[family] > value) ref.pool.hint[family] = value;
  }

  private addOwner(a: Allocation, markTaken = true): void {
    const k = a.address;
    let h = this.holdings.get(k);
    if (!h) {
      h = { family: a.family, value: a.value, address: a.address, pool: a.pool, sharingKey: a.sharingKey, owners: [] };
      this.holdings.set(k, h);
      if (markTaken) this.taken[a.family].add(a.value);
      this.indexKey(h.sharingKey, k, true);
    }
    const i = h.owners.findIndex((o) => o.uid === a.uid);
    if (i >= 0) h.owners[i] = a;
    else h.owners.push(a);
    const list = this.byUid.get(a.uid);
    if (list) list.push(a);
    else this.byUid.set(a.uid, [a]);
  }

  /** Removes one owner; true when the address has no owner left. */
  private removeOwner(a: Allocation): boolean {
    const k = a.address;
    const h = this.holdings.get(k)!;
    h.owners = h.owners.filter((o) => o.uid !== a.uid);
    const list = (this.byUid.get(a.uid) ?? []).filter((x) => x !== a);
    if (list.length > 0) this.byUid.set(a.uid, list);
    else this.byUid.delete(a.uid);
    if (h.owners.length > 0) return false;
    this.holdings.delete(k);
    this.indexKey(h.sharingKey, k, false);
    return true;
  }

  private indexKey(sharingKey: string | undefined, k: string, add: boolean): void {
    if (sharingKey === undefined) return;
    let set = this.bySharingKey.get(sharingKey);
    if (add) {
      if (!set) this.bySharingKey.set(sharingKey, (set = new Set()));
      set.add(k);
    } else if (set) {
      set.delete(k);
      if (set.size === 0) this.bySharingKey.delete(sharingKey);
    }
  }

  private doAllocate(svc: ServiceRequest, family: Family, p: { value: bigint; address: string; pool: string }, now: number, reason: string, changes: Change[]): void {
    const k = p.address;
    const q = this.quarantine.get(k);
    if (q) {
      this.quarantine.delete(k);
      changes.push({ kind: 'unquarantine', entry: q, reason: 'ReclaimedBySameService' });
    }
    const a: Allocation = {
      uid: svc.uid, namespace: svc.namespace, name: svc.name, family, address: p.address, value: p.value,
      pool: this.holdings.get(k)?.pool ?? p.pool, sharingKey: svc.sharingKey, ports: svc.ports, allocatedAt: now,
    };
    // A fresh address taken from quarantine is already in `taken`; IntervalSet.add is idempotent.
    this.addOwner(a);
    changes.push({ kind: 'allocate', allocation: a, reason });
  }

  private doRelease(a: Allocation, now: number, reason: string, changes: Change[]): void {
    const last = this.removeOwner(a);
    let quarantine: QuarantineEntry | undefined;
    if (last) {
      if (this.quarantineMs > 0) {
        quarantine = { family: a.family, address: a.address, value: a.value, pool: a.pool, until: now + this.quarantineMs, releasedBy: who(a) };
        this.quarantine.set(a.address, quarantine);
        this.expiries.push(quarantine);
      } else this.free(a.family, a.value);
    }
    changes.push({ kind: 'release', allocation: a, reason, quarantine });
  }

  /** Brings a kept allocation's recorded facts (ports, sharing key, names) up to date with the Service. */
  private refresh(a: Allocation, svc: ServiceRequest, changes: Change[], pool = a.pool): void {
    if (a.namespace === svc.namespace && a.name === svc.name && a.sharingKey === svc.sharingKey && a.pool === pool && sameList(a.ports, svc.ports)) return;
    const k = a.address;
    const h = this.holdings.get(k)!;
    const updated: Allocation = { ...a, namespace: svc.namespace, name: svc.name, sharingKey: svc.sharingKey, ports: svc.ports, pool: h.owners.length > 1 ? a.pool : pool };
    h.owners = h.owners.map((o) => (o.uid === a.uid ? updated : o));
    this.byUid.set(a.uid, (this.byUid.get(a.uid) ?? []).map((x) => (x === a ? updated : x)));
    if (h.owners.length === 1 && h.sharingKey !== svc.sharingKey) {
      this.indexKey(h.sharingKey, k, false);
      h.sharingKey = svc.sharingKey;
      this.indexKey(h.sharingKey, k, true);
    }
    if (h.owners.length === 1) h.pool = updated.pool;
    changes.push({ kind: 'update', allocation: updated, reason: 'ServiceChanged' });
  }
}
