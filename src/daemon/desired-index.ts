// The desired virtual services as the data plane holds them between changes, with what it derives from them
// kept current per change: the VIPs of each VRRP group and the forwarding methods in use. A whole new state
// (replace) and a change of a few keys (patch) leave it the same; a patch costs its own entries.
import type { Forwarding } from '../config/types.js';
import type { DesiredVirtualService } from '../model/types.js';

/** Part of the desired state changed: entries added or changed (`set`, by key) and keys no longer desired. */
export interface DesiredPatch {
  set: readonly DesiredVirtualService[];
  remove: readonly string[];
}

export interface IndexChange {
  /** A VIP appeared or went (VIP binding must follow). */
  vipsChanged: boolean;
  /** A forwarding method not in use before is (its host settings need checking). */
  newForwarding: boolean;
}

export class DesiredIndex {
  private readonly byKey = new Map<string, DesiredVirtualService>();
  /** Group → VIP → how many desired entries use it. */
  private readonly vipCounts = new Map<string, Map<string, number>>();
  /** VIP → how many desired entries use it, whatever their group. */
  private readonly allVips = new Map<string, number>();
  private readonly forwardingCounts = new Map<Forwarding, number>();
  private sorted: DesiredVirtualService[] | undefined;

  /** @param groupOf the VRRP group an entry's VIP belongs to ('' when VRRP is off). */
  constructor(private readonly groupOf: (v: DesiredVirtualService) => string) {}

  get(key: string): DesiredVirtualService | undefined {
    return this.byKey.get(key);
  }

  /** Every entry sorted by key (built when asked after a change). */
  list(): DesiredVirtualService[] {
    return (this.sorted ??= [...this.byKey.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)));
  }

  /** Every desired VIP: a live, read-only view. */
  vips(): ReadonlySet<string> & Iterable<string> {
    const m = this.allVips;
    return { has: (v: string) => m.has(v), get size() { return m.size; }, [Symbol.iterator]: () => m.keys() } as ReadonlySet<string>;
  }

  /** The VIPs of one group. */
  vipsOf(group: string): string[] {
    return [...(this.vipCounts.get(group)?.keys() ?? [])];
  }

  forwardings(): Set<Forwarding> {
    return new Set(this.forwardingCounts.keys());
  }

  /** A whole new state; reported as a VIP change (group membership may have moved with a config change). */
  replace(entries: readonly DesiredVirtualService[]): IndexChange {
    const forwardingBefore = this.forwardings();
    this.byKey.clear();
    this.vipCounts.clear();
    this.allVips.clear();
    this.forwardingCounts.clear();
    for (const v of entries) this.add(v);
    this.sorted = undefined;
    return { vipsChanged: true, newForwarding: [...this.forwardingCounts.keys()].some((f) => !forwardingBefore.has(f)) };
  }

  patch(p: DesiredPatch): IndexChange {
    // VIPs that went and came in this patch; one removed and added back is no change.
    const gone = new Set<string>();
    const came = new Set<string>();
    let newForwarding = false;
    const drop = (key: string) => {
      const old = this.byKey.get(key);
      if (!old) return;
      this.byKey.delete(key);
      if (!this.remove(old)) return;
      if (came.has(old.vip)) came.delete(old.vip);
      else gone.add(old.vip);
    };
    for (const key of p.remove) drop(key);
    let groupMoved = false;
    for (const v of p.set) {
      const old = this.byKey.get(v.key);
      if (old && this.groupOf(old) !== this.groupOf(v)) groupMoved = true;
      drop(v.key);
      if (!this.forwardingCounts.has(v.forwarding)) newForwarding = true;
      if (!this.add(v)) continue;
      if (gone.has(v.vip)) gone.delete(v.vip);
      else came.add(v.vip);
    }
    if (p.set.length > 0 || p.remove.length > 0) this.sorted = undefined;
    return { vipsChanged: groupMoved || gone.size + came.size > 0, newForwarding };
  }

  /** Adds an entry; true when its VIP is new. */
  private add(v: DesiredVirtualService): boolean {
    this.byKey.set(v.key, v);
    const g = this.groupOf(v);
    let counts = this.vipCounts.get(g);
    if (!counts) this.vipCounts.set(g, (counts = new Map()));
    counts.set(v.vip, (counts.get(v.vip) ?? 0) + 1);
    this.forwardingCounts.set(v.forwarding, (this.forwardingCounts.get(v.forwarding) ?? 0) + 1);
    const n = (this.allVips.get(v.vip) ?? 0) + 1;
    this.allVips.set(v.vip, n);
    return n === 1;
  }

  /** Removes an entry's counts; true when its VIP is gone. */
  private remove(v: DesiredVirtualService): boolean {
    const g = this.groupOf(v);
    const counts = this.vipCounts.get(g);
    const c = (counts?.get(v.vip) ?? 1) - 1;
    if (c <= 0) counts?.delete(v.vip);
    else counts!.set(v.vip, c);
    if (counts?.size === 0) this.vipCounts.delete(g);
    const f = (this.forwardingCounts.get(v.forwarding) ?? 1) - 1;
    if (f <= 0) this.forwardingCounts.delete(v.forwarding);
    else this.forwardingCounts.set(v.forwarding, f);
    const n = (this.allVips.get(v.vip) ?? 1) - 1;
    if (n <= 0) {
      this.allVips.delete(v.vip);
      return true;
    }
    this.allVips.set(v.vip, n);
    return false;
  }
}
