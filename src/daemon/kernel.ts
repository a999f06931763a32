// The kernel data plane assembled for the daemon: the IPVS reconciler programs every virtual service on
// every LB host (so a backup is ready the moment it becomes master), while VIPs are bound only for the VRRP
// groups this host is MASTER of (decision 2 in DESIGN.md), or all of them when VRRP is off.
import { join } from 'node:path';
import type { VirtualServiceView, VrrpGroupView } from '../api/state.js';
import type { Config } from '../config/types.js';
import { IpvsClient, type ServiceWithDests } from '../ipvs/index.js';
import type { Stats } from '../ipvs/types.js';
import type { DesiredState } from '../model/types.js';
import { OwnedServices } from '../reconcile/ownership.js';
import { Reconciler, vipOfKey, type PassReport } from '../reconcile/reconciler.js';
import { describeFinding, reconcileHostSysctls, sysctlNeeds, type SysctlFinding } from '../sysctl/index.js';
import type { Logger } from '../util/log.js';
import { JsonFileOwnership, VipBinder } from '../vip/index.js';
import { VrrpController } from '../vrrp/index.js';
import type { SyncMode } from '../vrrp/index.js';
import type { DataPlane, DataPlaneHealth, DataPlaneHooks, ReconcileResult } from './dataplane.js';
import { DesiredIndex, type DesiredPatch, type IndexChange } from './desired-index.js';

export function makeKernelDataPlane(config: Config, log: Logger, hooks: DataPlaneHooks = {}): DataPlane {
  return new KernelDataPlane(config, log, hooks);
}

const result = (r: PassReport): ReconcileResult & { byKind: Record<string, number> } => ({ operations: r.operations, errors: r.errors, durationMs: r.durationMs, byKind: r.byKind, kernelRead: r.kernelRead, drifted: r.drifted, verified: r.verified });
const traffic = (s: Stats) => ({
  connections: Number(s.conns), packetsIn: Number(s.inpkts), packetsOut: Number(s.outpkts), bytesIn: Number(s.inbytes), bytesOut: Number(s.outbytes), cps: Number(s.cps),
});

const NO_GROUP = '';
/** Least time between two re-announcements of a group after lower-priority adverts (see announceGroup). */
const REANNOUNCE_MS = 1000;

export class KernelDataPlane implements DataPlane {
  private client: IpvsClient | undefined;
  /**
   * Sync-daemon requests go over a socket of their own: one socket serves one request at a time, and a stop
   * the kernel leaves unanswered (IpvsClient.stopSyncDaemon) must not hold up the reconciler's programming.
   */
  private syncClient: IpvsClient | undefined;
  private binder: VipBinder | undefined;
  private vrrpController: VrrpController | undefined;
  private reconciler: Reconciler | undefined;
  /** The desired virtual services, with their VIPs by VRRP group ('' when VRRP is off) and forwarding methods. */
  private readonly desired = new DesiredIndex((v) => (this.config.vrrp.enabled ? (v.vrrpGroup ?? NO_GROUP) : NO_GROUP));
  /** No pass runs before the first desired state: an empty one would remove every owned service (fail static
   * while start-up still waits for the Kubernetes API). */
  private haveDesired = false;
  private readonly masterOf = new Set<string>();
  private readonly since = new Map<string, { state: string; at: string; transitions: number }>();
  private vipChain: Promise<void> = Promise.resolve();
  private readonly reannounce = new Map<string, { last: number; trailing: NodeJS.Timeout | undefined }>();
  private startError: string | undefined;
  private sysctls: SysctlFinding[] = [];
  private sysctlReport = '';

  constructor(private config: Config, private readonly log: Logger, private readonly hooks: DataPlaneHooks = {}) {}

  /** Checks the host's kernel settings (and fixes what sysctl.manage allows); logs only what changed. */
  private refreshSysctls(): void {
    let r;
    try {
      r = reconcileHostSysctls(sysctlNeeds(this.config, this.desired.forwardings()), { manage: this.config.sysctl.manage });
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'could not check the host\'s sysctls');
      return;
    }
    for (const c of r.changed) this.log.info({ sysctl: c.key, from: c.from ?? null, to: c.to }, 'sysctl set (sysctl.manage)');
    for (const f of r.failed) this.log.error({ sysctl: f.key, from: f.from ?? null, to: f.to, err: f.error }, 'could not set sysctl');
    this.sysctls = r.findings;
    const bad = r.findings.filter((f) => !f.ok);
    const report = bad.map(describeFinding).join('\n');
    if (report === this.sysctlReport) return;
    this.sysctlReport = report;
    for (const f of bad) {
      const fields = { sysctl: f.key, actual: f.actual ?? null, want: f.want, why: f.why, advice: f.advice };
      if (f.severity === 'error') this.log.error(fields, 'host sysctl breaks the data plane');
      else this.log.warn(fields, 'host sysctl differs from the recommended value');
    }
    if (bad.length === 0) this.log.info({ checked: r.findings.map((f) => f.key) }, 'host sysctls as recommended');
  }

  async start(): Promise<void> {
    const c = this.config;
    try {
      this.client = await IpvsClient.open({ loadModule: true });
      if (c.vrrp.enabled && c.vrrp.syncDaemon.enabled) this.syncClient = await IpvsClient.open({ loadModule: false });
    } catch (err) {
      this.client?.close();
      this.client = undefined;
      this.startError = `kernel: ${(err as Error).message}`;
      this.log.error({ err: this.startError }, 'IPVS is not available; nothing will be programmed');
      return;
    }
    this.refreshSysctls();
    this.reconciler = new Reconciler({
      client: this.client, owned: new OwnedServices(join(c.stateDir, 'ipvs-owned.json')), log: this.log, coalesceMs: c.reconcile.coalesceMs,
      onPass: (r) => this.hooks.onPass?.(result(r)),
    });
    this.binder = await VipBinder.open({
      interface: c.interface,
      store: new JsonFileOwnership(join(c.stateDir, 'vips-owned.json')),
      announce: c.vrrp.garpRepeat === 0 ? false : { count: c.vrrp.garpRepeat, intervalMs: c.vrrp.garpIntervalMs },
      onEvent: (e) => this.log.info({ vip: e }, 'vip event'),
    });
    void this.binder.watch().catch((err) => this.log.error({ err: (err as Error).message }, 'VIP link watch stopped'));
    if (c.vrrp.enabled) {
      this.vrrpController = new VrrpController({
        config: c.vrrp, log: this.log,
        vips: { bindGroup: (g) => this.bindGroup(g), releaseGroup: (g) => this.releaseGroup(g), announceGroup: (g) => this.announceGroup(g) },
        sync: { setMode: (m) => this.setSyncMode(m) },
      });
      this.vrrpController.on('transition', ({ step }) => this.noteTransitions(step));
      await this.vrrpController.start();
    } else {
      this.masterOf.add(NO_GROUP);
    }
  }

  private noteTransitions(_step: unknown): void {
    const groups = this.vrrpController?.state.groups ?? {};
    for (const [name, g] of Object.entries(groups)) {
      const prev = this.since.get(name);
      if (prev?.state !== g.phase) this.since.set(name, { state: g.phase, at: new Date().toISOString(), transitions: (prev?.transitions ?? 0) + (prev ? 1 : 0) });
    }
  }

  update(desired: DesiredState): void {
    this.haveDesired = true;
    const change = this.desired.replace(desired.virtualServices);
    this.followed(change, true);
    this.reconciler?.update(desired.virtualServices, this.desired.vips());
  }

  patch(changes: DesiredPatch): void {
    // Before the first whole state there is nothing to patch: update() starts the data plane.
    if (!this.haveDesired) return;
    const change = this.desired.patch(changes);
    this.followed(change, false);
    this.reconciler?.patch(changes, change.vipsChanged ? this.desired.vips() : undefined);
  }

  /** Host settings for a new forwarding method; VIP binding when the VIPs changed (a patch binds only VIPs not
   * bound yet: one new Service among 10,000 is not 10,000 address requests; the link watch repairs the rest). */
  private followed(change: IndexChange, whole: boolean): void {
    if (change.newForwarding && this.client) this.refreshSysctls();
    if (change.vipsChanged) void this.queueVipSync({ onlyNew: !whole });
  }

  /** Bound VIPs follow the desired set for the groups we are master of; everything else is released. */
  private queueVipSync(o: { onlyNew?: boolean } = {}): Promise<void> {
    this.vipChain = this.vipChain.then(async () => {
      const b = this.binder;
      if (!b) return;
      const want = new Set<string>();
      for (const g of this.masterOf) for (const v of this.desired.vipsOf(g)) want.add(v);
      // Batched: a takeover binds every VIP of its groups at once (one ownership write, netlink batches),
      // so the first GARP does not wait for the last address.
      const alreadyBound = o.onlyNew ? new Set(b.ownedAddresses()) : undefined;
      const wanted = alreadyBound ? [...want].filter((v) => !alreadyBound.has(v)) : [...want];
      const bound = await b.bindMany(wanted).catch((err: unknown) => wanted.map(() => err as Error));
      bound.forEach((r, i) => {
        if (r instanceof Error) this.log.error({ vip: wanted[i], err: r.message }, 'could not bind VIP');
      });
      const stale = b.ownedAddresses().filter((v) => !want.has(v));
      const released = await b.unbindMany(stale).catch((err: unknown) => stale.map(() => err as Error));
      released.forEach((r, i) => {
        if (r instanceof Error) this.log.error({ vip: stale[i], err: r.message }, 'could not release VIP');
      });
    });
    return this.vipChain;
  }

  private bindGroup(group: string): Promise<void> {
    this.masterOf.add(group);
    return this.queueVipSync();
  }

  private releaseGroup(group: string): Promise<void> {
    this.masterOf.delete(group);
    return this.queueVipSync();
  }

  /**
   * GARP for the group's bound VIPs again: a lower-priority peer was master for a moment and pulled the
   * neighbours' caches over. Such adverts come once per advert interval for as long as the peer believes it
   * is master, so this is rate-limited: one GARP per VIP at once, at most one per REANNOUNCE_MS while they
   * keep coming, and one more REANNOUNCE_MS after the last, so the last word on the segment is ours even if
   * the peer's own GARPs went out after our first. Measured in the lab: three GARPs per advert (one arping
   * process each) starved the emulated hosts, which then missed more adverts and flapped more. IPv6
   * neighbours learn only from the unsolicited NA of the address add (src/vip/announce.ts).
   */
  private announceGroup(group: string): Promise<void> {
    const state = this.reannounce.get(group) ?? { last: -Infinity, trailing: undefined };
    this.reannounce.set(group, state);
    if (state.trailing) clearTimeout(state.trailing);
    const fire = () => {
      state.last = Date.now();
      this.garpOnce(group);
    };
    if (Date.now() - state.last >= REANNOUNCE_MS) fire();
    state.trailing = setTimeout(() => {
      state.trailing = undefined;
      fire();
    }, REANNOUNCE_MS);
    state.trailing.unref();
    return Promise.resolve();
  }

  private garpOnce(group: string): void {
    const b = this.binder;
    if (!b || this.config.vrrp.garpRepeat === 0 || !this.masterOf.has(group)) return;
    const owned = new Set(b.ownedAddresses());
    const vips = this.desired.vipsOf(group).filter((v) => owned.has(v) && !v.includes(':'));
    this.log.info({ group, vips }, `group ${group}: a lower-priority router advertised as master; VIPs announced again`);
    for (const vip of vips) {
      void b.gratuitousArp(vip).then((r) => {
        if (r.errors.length > 0) this.log.warn({ vip, errors: r.errors }, 'gratuitous ARP failed');
      });
    }
  }

  private async setSyncMode(mode: SyncMode): Promise<void> {
    const client = this.syncClient;
    if (!client) return;
    const sd = this.config.vrrp.syncDaemon;
    const running = new Set((await client.syncDaemons()).map((d) => d.role));
    for (const role of ['master', 'backup'] as const) {
      if (mode[role] && !running.has(role)) await client.startSyncDaemon({ role, interface: sd.interface, syncId: sd.syncId });
      if (!mode[role] && running.has(role)) await client.stopSyncDaemon(role);
    }
  }

  /** A resync: reads the kernel's table, repairs out-of-band changes, and re-checks the host's sysctls. */
  async reconcileNow(): Promise<ReconcileResult> {
    if (!this.reconciler) return { operations: 0, errors: this.startError ? 1 : 0, durationMs: 0 };
    this.refreshSysctls();
    if (!this.haveDesired) return { operations: 0, errors: 0, durationMs: 0 };
    return result(await this.reconciler.reconcileNow({ read: true }));
  }

  /** A rolling verification of the next `count` services (no sysctl check: that is the resync's). */
  async verifyNow(count: number): Promise<ReconcileResult> {
    if (!this.reconciler || !this.haveDesired) return { operations: 0, errors: 0, durationMs: 0 };
    return result(await this.reconciler.verifyNow(count));
  }

  async reconfigure(config: Config): Promise<void> {
    // keepalived first: when it refuses the new config, nothing here has changed.
    if (this.vrrpController) await this.vrrpController.applyConfig(config.vrrp);
    this.config = config;
    if (this.client) this.refreshSysctls();
  }

  health(): DataPlaneHealth {
    const messages: string[] = [];
    if (this.startError) messages.push(this.startError);
    const last = this.reconciler?.lastReport;
    if (last && last.errors > 0) messages.push(`last reconcile: ${last.errors} kernel operations failed: ${last.errorMessages.slice(0, 3).join('; ')}`);
    for (const f of this.sysctls) if (!f.ok) messages.push(describeFinding(f));
    return { kernel: this.client !== undefined, reconciledOnce: (this.reconciler?.passes ?? 0) > 0, messages, sysctls: this.sysctls };
  }

  async virtualServices(): Promise<VirtualServiceView[]> {
    if (!this.client) return [];
    // Every counter of every real server (the API and /metrics show them), so one destination dump per
    // service; table() is the cheap read for the reconciler, which needs no counters.
    const snapshot: ServiceWithDests[] = await this.client.snapshot();
    const views: VirtualServiceView[] = [];
    for (const s of snapshot) {
      if (s.service.address === undefined || s.service.protocol === undefined) continue;
      const proto = s.service.protocol.toUpperCase();
      const key = `${proto}/${s.service.address.includes(':') ? `[${s.service.address}]` : s.service.address}:${s.service.port}`;
      const want = this.desired.get(key);
      const nodes = new Map(want?.realServers.map((r) => [r.address, r]) ?? []);
      views.push({
        key, vip: vipOfKey(key), protocol: proto, port: s.service.port, scheduler: s.service.scheduler,
        forwarding: s.destinations[0]?.forwarding ?? want?.forwarding ?? '', service: want?.service, owned: want !== undefined,
        stats: traffic(s.service.stats),
        realServers: s.destinations.map((d) => ({
          address: d.address, port: d.port, node: nodes.get(d.address)?.node ?? '', weight: d.weight, state: nodes.get(d.address)?.state ?? 'unknown',
          health: 'unknown' as const, activeConnections: d.activeConns, inactiveConnections: d.inactiveConns,
          stats: traffic(d.stats),
        })),
      });
    }
    return views;
  }

  vrrp(): VrrpGroupView[] {
    if (!this.vrrpController) return [];
    const groups = this.vrrpController.state.groups;
    return Object.entries(groups).map(([name, g]) => ({
      name, state: g.phase, since: this.since.get(name)?.at ?? null, transitions: this.since.get(name)?.transitions ?? 0,
      vips: this.desired.vipsOf(name).sort(),
    }));
  }

  keepalived(): { running: boolean; unexpectedExits: number } | undefined {
    const c = this.vrrpController;
    return c ? { running: c.keepalivedPid !== undefined, unexpectedExits: c.crashes } : undefined;
  }

  async stop(): Promise<void> {
    this.reconciler?.stop();
    for (const r of this.reannounce.values()) if (r.trailing) clearTimeout(r.trailing);
    if (this.vrrpController) {
      // With a peer, a stopping host hands its VIPs over: keepalived's priority-0 advert makes the peer master.
      await this.vrrpController.stop();
      this.masterOf.clear();
    }
    // Without VRRP there is no one to hand over to: the VIPs stay bound, like the IPVS table (fail static), so
    // traffic keeps flowing while no daemon runs (an upgrade in place) and the next start finds nothing to do.
    await this.queueVipSync();
    await this.binder?.close();
    this.syncClient?.close();
    this.client?.close();
  }
}
