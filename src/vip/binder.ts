// Binds VIPs (IPv4 /32, IPv6 /128) to one interface over rtnetlink, idempotently, and keeps them there.
// Ownership rules (docs/kernel.md):
// - an address is recorded as ours BEFORE it is added, so a crash can leave a record without an address
//   (harmless: unbind then finds nothing) but never an address without a record (which we could never remove);
// - if the kernel says the address already exists and it was not ours, the record is dropped again and the
//   bind reports "foreign": we use it but will never delete it;
// - unbind deletes only recorded addresses; anything else is reported "not-owned" and left alone.
// The link watch (watch()) listens to RTNLGRP_LINK / IPV4_IFADDR / IPV6_IFADDR: an owned VIP deleted by
// someone else is added back, and link down/up is reported (IPv6 addresses vanish on admin down; they are
// restored and re-announced on up).
import { parseIp, formatIp } from '../ipam/address.js';
import { NETLINK_ROUTE } from '../ipvs/constants.js';
import { ERRNO, NetlinkError } from '../ipvs/errors.js';
import { NlFlags, type NlMsg } from '../ipvs/netlink.js';
import { kernelErrno, NetlinkTransport } from '../ipvs/transport.js';
import { defaultAnnounce, enableNdiscNotify, gratuitousArp, validInterfaceName, type AnnounceOptions } from './announce.js';
import { ArpingWorker } from './arping-worker.js';
import type { OwnedVip, VipOwnershipStore } from './ownership.js';
import { addrDumpPayload, addrPayload, decodeAddr, decodeLink, IFA_F, linkByNamePayload, RTM, RTNLGRP, type IfAddr } from './rtnl.js';

export type VipEvent =
  | { type: 'link-down' | 'link-up' | 'link-gone'; interface: string }
  | { type: 'vip-restored'; address: string }
  | { type: 'vip-restore-failed'; address: string; error: string }
  | { type: 'announced'; address: string; sent: number; errors: string[] }
  | { type: 'watch-error'; error: string };

export interface VipBinderOptions {
  interface: string;
  store: VipOwnershipStore;
  /** Gratuitous ARP after each IPv4 bind; false disables it (tests, or when keepalived announces). */
  announce?: Partial<AnnounceOptions> | false;
  onEvent?: (e: VipEvent) => void;
  /**
   * IPv6 duplicate address detection (default true). Linux sends the unsolicited neighbour advertisement of
   * ndisc_notify only when DAD completes (about 1 s, measured on 6.1 and 6.18); with DAD off the address is
   * usable at once but no NA is sent at all, and with optimistic DAD no NA is sent either. So the default
   * trades one second of a tentative address for neighbours that learn the move at once.
   */
  ipv6Dad?: boolean;
}

export type BindResult = 'added' | 'already-bound' | 'foreign';
export type UnbindResult = 'removed' | 'already-absent' | 'not-owned';

function vipOf(address: string): { text: string; family: 4 | 6; prefixLength: number } {
  const ip = typeof address === 'string' ? parseIp(address) : undefined;
  if (!ip) throw new Error(`vip: must be an IPv4 or IPv6 address (got ${JSON.stringify(address)})`);
  return { text: formatIp(ip), family: ip.family, prefixLength: ip.family === 4 ? 32 : 128 };
}

export class VipBinder {
  readonly interface: string;
  private ifindex: number;
  private owned: OwnedVip[];
  private readonly releasing = new Set<string>();
  private watcher: NetlinkTransport | undefined;
  private linkUp: boolean | undefined;
  private readonly aborter = new AbortController();
  private readonly announcing = new Set<Promise<unknown>>();
  private readonly announceOpts: AnnounceOptions | false;
  /** Runs arping off the event loop's fork path (see arping-worker.ts); only when announcing. */
  private readonly arping: ArpingWorker | undefined;

  private constructor(
    private readonly rt: NetlinkTransport,
    private readonly opts: VipBinderOptions,
    ifindex: number,
    owned: OwnedVip[],
  ) {
    this.interface = opts.interface;
    this.ifindex = ifindex;
    this.owned = owned;
    this.announceOpts = opts.announce === false ? false : { ...defaultAnnounce, ...opts.announce };
    this.arping = this.announceOpts ? new ArpingWorker(opts.interface, this.announceOpts.arping) : undefined;
    // Started now: the first takeover must not pay for a fork of the daemon.
    this.arping?.start();
  }

  static async open(opts: VipBinderOptions): Promise<VipBinder> {
    if (!validInterfaceName(opts.interface)) throw new Error(`interface: must be a Linux interface name (got ${JSON.stringify(opts.interface)})`);
    const rt = new NetlinkTransport({ protocol: NETLINK_ROUTE });
    try {
      const ifindex = await lookupIndex(rt, opts.interface);
      const owned = await opts.store.load();
      const binder = new VipBinder(rt, opts, ifindex, owned);
      if (owned.some((o) => o.interface === opts.interface && o.prefixLength === 128)) await enableNdiscNotify(opts.interface).catch(() => undefined);
      return binder;
    } catch (e) {
      rt.close();
      throw e;
    }
  }

  /** The VIPs this binder added on its interface (recorded in the store). */
  ownedAddresses(): string[] {
    return this.owned.filter((o) => o.interface === this.interface).map((o) => o.address);
  }

  isOwned(address: string): boolean {
    const v = vipOf(address);
    return this.owned.some((o) => o.interface === this.interface && o.address === v.text);
  }

  /** Addresses currently on the interface (ours and others). */
  async addresses(): Promise<IfAddr[]> {
    const msgs = await this.rt.dump({ type: RTM.GETADDR, flags: 0, payload: addrDumpPayload() });
    return msgs.filter((m) => m.type === RTM.NEWADDR).map((m) => decodeAddr(m.payload)).filter((a) => a.index === this.ifindex);
  }

  async bind(address: string): Promise<BindResult> {
    const v = vipOf(address);
    const wasOwned = this.isOwned(v.text);
    if (!wasOwned) await this.record([...this.owned, { interface: this.interface, address: v.text, prefixLength: v.prefixLength }]);
    if (v.family === 6) await enableNdiscNotify(this.interface).catch(() => undefined);
    const errno = await this.add(v);
    if (errno === ERRNO.EEXIST) {
      if (wasOwned) return 'already-bound';
      await this.record(this.owned.filter((o) => !(o.interface === this.interface && o.address === v.text)));
      return 'foreign';
    }
    if (errno !== 0) {
      if (!wasOwned) await this.record(this.owned.filter((o) => !(o.interface === this.interface && o.address === v.text)));
      throw new NetlinkError(errno, `bind VIP ${v.text}/${v.prefixLength} on ${this.interface}`, addHint(errno));
    }
    this.startAnnounce(v.text);
    return 'added';
  }

  async unbind(address: string): Promise<UnbindResult> {
    const v = vipOf(address);
    if (!this.isOwned(v.text)) return 'not-owned';
    this.releasing.add(v.text);
    try {
      let errno = 0;
      try {
        await this.rt.request({ type: RTM.DELADDR, flags: 0, payload: addrPayload(this.ifindex, v.text, v.prefixLength) });
      } catch (e) {
        errno = kernelErrno(e) ?? -1;
        if (errno === -1) throw e;
      }
      // EADDRNOTAVAIL (IPv4) / ENODEV or ENOENT (IPv6): it was already gone.
      if (errno !== 0 && errno !== ERRNO.EADDRNOTAVAIL && errno !== ERRNO.ENODEV && errno !== ERRNO.ENOENT) {
        throw new NetlinkError(errno, `unbind VIP ${v.text}/${v.prefixLength} from ${this.interface}`);
      }
      await this.record(this.owned.filter((o) => !(o.interface === this.interface && o.address === v.text)));
      return errno === 0 ? 'removed' : 'already-absent';
    } finally {
      this.releasing.delete(v.text);
    }
  }

  /**
   * bind() for many addresses at once, for a VRRP takeover: one ownership write for all new ones (before any
   * is added, as bind() does), the adds in netlink batches, then the announcements, so the first GARP goes
   * out after one file write and one round trip instead of after the whole list. One at a time costs a
   * rewrite of the ownership file and a round trip each: measured 8.4 s for 1,000 VIPs on an unemulated
   * host, against a failover goal of 1 s. Results are in the order given (an invalid address or a kernel
   * refusal is an Error in its slot); nothing is thrown for one bad address.
   */
  async bindMany(addresses: readonly string[]): Promise<Array<BindResult | Error>> {
    const out: Array<BindResult | Error> = [];
    const todo: Array<{ slot: number; v: ReturnType<typeof vipOf>; wasOwned: boolean }> = [];
    const seen = new Map<string, number>();
    for (const [slot, a] of addresses.entries()) {
      let v: ReturnType<typeof vipOf>;
      try {
        v = vipOf(a);
      } catch (e) {
        out[slot] = e as Error;
        continue;
      }
      if (seen.has(v.text)) {
        out[slot] = new Error(`vip: ${v.text} is listed twice`);
        continue;
      }
      seen.set(v.text, slot);
      todo.push({ slot, v, wasOwned: this.isOwned(v.text) });
    }
    if (todo.length === 0) return out;
    const fresh = todo.filter((t) => !t.wasOwned);
    if (fresh.length > 0) await this.record([...this.owned, ...fresh.map((t) => ({ interface: this.interface, address: t.v.text, prefixLength: t.v.prefixLength }))]);
    if (todo.some((t) => t.v.family === 6)) await enableNdiscNotify(this.interface).catch(() => undefined);
    const errnos = await this.rt.batch(todo.map((t) => ({
      type: RTM.NEWADDR,
      flags: NlFlags.CREATE | NlFlags.EXCL,
      payload: addrPayload(this.ifindex, t.v.text, t.v.prefixLength, t.v.family === 6 && this.opts.ipv6Dad === false ? IFA_F.NODAD : 0),
    })));
    const drop = new Set<string>();
    for (const [k, t] of todo.entries()) {
      const errno = errnos[k] ?? 0;
      if (errno === 0) {
        out[t.slot] = 'added';
        this.startAnnounce(t.v.text);
      } else if (errno === ERRNO.EEXIST) {
        out[t.slot] = t.wasOwned ? 'already-bound' : 'foreign';
        if (!t.wasOwned) drop.add(t.v.text);
      } else {
        if (!t.wasOwned) drop.add(t.v.text);
        out[t.slot] = new NetlinkError(errno, `bind VIP ${t.v.text}/${t.v.prefixLength} on ${this.interface}`, addHint(errno));
      }
    }
    if (drop.size > 0) await this.record(this.owned.filter((o) => !(o.interface === this.interface && drop.has(o.address))));
    return out;
  }

  /**
   * unbind() for many addresses at once: the deletes in netlink batches, then one ownership write. Addresses
   * this binder did not add are 'not-owned' and left alone. Results in the order given.
   */
  async unbindMany(addresses: readonly string[]): Promise<Array<UnbindResult | Error>> {
    const out: Array<UnbindResult | Error> = [];
    const todo: Array<{ slot: number; v: ReturnType<typeof vipOf> }> = [];
    for (const [slot, a] of addresses.entries()) {
      let v: ReturnType<typeof vipOf>;
      try {
        v = vipOf(a);
      } catch (e) {
        out[slot] = e as Error;
        continue;
      }
      if (!this.isOwned(v.text) || todo.some((t) => t.v.text === v.text)) out[slot] = 'not-owned';
      else todo.push({ slot, v });
    }
    if (todo.length === 0) return out;
    for (const t of todo) this.releasing.add(t.v.text);
    try {
      const errnos = await this.rt.batch(todo.map((t) => ({ type: RTM.DELADDR, flags: 0, payload: addrPayload(this.ifindex, t.v.text, t.v.prefixLength) })));
      const gone = new Set<string>();
      for (const [k, t] of todo.entries()) {
        const errno = errnos[k] ?? 0;
        // EADDRNOTAVAIL (IPv4) / ENODEV or ENOENT (IPv6): it was already gone.
        if (errno === 0 || errno === ERRNO.EADDRNOTAVAIL || errno === ERRNO.ENODEV || errno === ERRNO.ENOENT) {
          out[t.slot] = errno === 0 ? 'removed' : 'already-absent';
          gone.add(t.v.text);
        } else {
          out[t.slot] = new NetlinkError(errno, `unbind VIP ${t.v.text}/${t.v.prefixLength} from ${this.interface}`);
        }
      }
      if (gone.size > 0) await this.record(this.owned.filter((o) => !(o.interface === this.interface && gone.has(o.address))));
    } finally {
      for (const t of todo) this.releasing.delete(t.v.text);
    }
    return out;
  }

  /** Re-adds every owned VIP that is missing from the interface; returns the ones it restored. */
  async resync(): Promise<string[]> {
    const present = new Set((await this.addresses()).map((a) => a.address));
    const restored: string[] = [];
    for (const o of this.owned.filter((x) => x.interface === this.interface)) {
      if (present.has(o.address) || this.releasing.has(o.address)) continue;
      const errno = await this.add(vipOf(o.address));
      if (errno === 0) {
        restored.push(o.address);
        this.emit({ type: 'vip-restored', address: o.address });
      } else if (errno !== ERRNO.EEXIST) {
        this.emit({ type: 'vip-restore-failed', address: o.address, error: new NetlinkError(errno, `restore VIP ${o.address}`).message });
      }
    }
    return restored;
  }

  /** Sends the announcements for an address again (after a VRRP transition, say). */
  announce(address: string): void {
    this.startAnnounce(vipOf(address).text);
  }

  /**
   * `count` gratuitous ARPs for a bound IPv4 address, now, whatever the configured announcement (the VRRP
   * re-announcement sends one). Never throws; errors are in the result.
   */
  gratuitousArp(address: string, count = 1): Promise<{ sent: number; errors: string[] }> {
    const opts = this.announceOpts || defaultAnnounce;
    return gratuitousArp(this.interface, vipOf(address).text, { ...opts, count }, this.aborter.signal, this.arping ? (a) => this.arping!.send(a) : undefined).catch((e: unknown) => ({ sent: 0, errors: [(e as Error).message] }));
  }

  /** Starts the link watch; events go to opts.onEvent. */
  async watch(): Promise<void> {
    if (this.watcher) return;
    const w = new NetlinkTransport({ protocol: NETLINK_ROUTE, groups: [RTNLGRP.LINK, RTNLGRP.IPV4_IFADDR, RTNLGRP.IPV6_IFADDR] });
    this.watcher = w;
    w.onNotification(
      (m) => this.onNotification(m),
      (err) => {
        this.emit({ type: 'watch-error', error: err.message });
        // Lost notifications (ENOBUFS): we cannot know what changed, so compare with the kernel.
        void this.resync().catch((e: unknown) => this.emit({ type: 'watch-error', error: (e as Error).message }));
      },
    );
    // The state before the first event, so that the first change is reported as a change.
    const link = await this.rt.request({ type: RTM.GETLINK, flags: 0, payload: linkByNamePayload(this.interface) }).catch(() => []);
    const first = link.find((m) => m.type === RTM.NEWLINK);
    this.linkUp = first ? decodeLink(first.payload).up : undefined;
  }

  /** Stops the watch and pending announcements; leaves every address where it is. */
  async close(): Promise<void> {
    this.aborter.abort();
    this.arping?.close();
    this.watcher?.close();
    this.watcher = undefined;
    await Promise.allSettled([...this.announcing]);
    this.rt.close();
  }

  private onNotification(m: NlMsg): void {
    try {
      if (m.type === RTM.DELADDR) {
        const a = decodeAddr(m.payload);
        if (a.index !== this.ifindex || this.releasing.has(a.address)) return;
        if (!this.isOwned(a.address)) return;
        void this.add(vipOf(a.address)).then(
          (errno) => {
            if (errno === 0 || errno === ERRNO.EEXIST) {
              this.emit({ type: 'vip-restored', address: a.address });
              this.startAnnounce(a.address);
            } else this.emit({ type: 'vip-restore-failed', address: a.address, error: new NetlinkError(errno, `restore VIP ${a.address}`).message });
          },
          (e: unknown) => this.emit({ type: 'vip-restore-failed', address: a.address, error: (e as Error).message }),
        );
      } else if (m.type === RTM.NEWLINK || m.type === RTM.DELLINK) {
        const l = decodeLink(m.payload);
        if (m.type === RTM.DELLINK) {
          if (l.index === this.ifindex) this.emit({ type: 'link-gone', interface: this.interface });
          return;
        }
        if (l.index !== this.ifindex) {
          // The interface was re-created under the same name: follow it and put our VIPs back.
          if (l.name !== this.interface) return;
          this.ifindex = l.index;
        }
        if (l.up === this.linkUp) return;
        this.linkUp = l.up;
        this.emit({ type: l.up ? 'link-up' : 'link-down', interface: this.interface });
        if (l.up) {
          void this.resync().then(
            () => this.ownedAddresses().forEach((a) => this.startAnnounce(a)),
            (e: unknown) => this.emit({ type: 'watch-error', error: (e as Error).message }),
          );
        }
      }
    } catch (e) {
      this.emit({ type: 'watch-error', error: (e as Error).message });
    }
  }

  /** Adds the address; returns 0 or the kernel's errno. */
  private async add(v: { text: string; family: 4 | 6; prefixLength: number }): Promise<number> {
    const flags = v.family === 6 && this.opts.ipv6Dad === false ? IFA_F.NODAD : 0;
    try {
      await this.rt.request({
        type: RTM.NEWADDR,
        flags: NlFlags.CREATE | NlFlags.EXCL,
        payload: addrPayload(this.ifindex, v.text, v.prefixLength, flags),
      });
      return 0;
    } catch (e) {
      const errno = kernelErrno(e);
      if (errno === undefined) throw e;
      return errno;
    }
  }

  private async record(owned: OwnedVip[]): Promise<void> {
    await this.opts.store.save(owned);
    this.owned = owned;
  }

  private startAnnounce(address: string): void {
    const opts = this.announceOpts;
    if (!opts || vipOf(address).family !== 4) return;
    const p = gratuitousArp(this.interface, address, opts, this.aborter.signal, this.arping ? (a) => this.arping!.send(a) : undefined).then(
      (r) => this.emit({ type: 'announced', address, sent: r.sent, errors: r.errors }),
      (e: unknown) => this.emit({ type: 'announced', address, sent: 0, errors: [(e as Error).message] }),
    );
    this.announcing.add(p);
    void p.finally(() => this.announcing.delete(p));
  }

  private emit(e: VipEvent): void {
    try {
      this.opts.onEvent?.(e);
    } catch {
      // A listener's bug must not stop the watch.
    }
  }
}

function addHint(errno: number): string | undefined {
  if (errno === ERRNO.EPERM) return 'not permitted (needs CAP_NET_ADMIN)';
  if (errno === ERRNO.ENODEV) return 'the interface is gone';
  return undefined;
}

async function lookupIndex(rt: NetlinkTransport, name: string): Promise<number> {
  try {
    const replies = await rt.request({ type: RTM.GETLINK, flags: 0, payload: linkByNamePayload(name) });
    const link = replies.find((m) => m.type === RTM.NEWLINK);
    if (!link) throw new Error(`interface ${name}: no link in the kernel's reply`);
    return decodeLink(link.payload).index;
  } catch (e) {
    const errno = kernelErrno(e);
    if (errno === ERRNO.ENODEV) throw new NetlinkError(errno, `interface ${JSON.stringify(name)}`, 'no such network interface');
    if (errno !== undefined) throw new NetlinkError(errno, `look up interface ${JSON.stringify(name)}`);
    throw e;
  }
}
