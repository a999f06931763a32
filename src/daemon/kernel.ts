// The kernel data plane assembled for the daemon: the IPVS reconciler programs every virtual service on
// every LB host (so a backup is ready the moment it becomes master), while VIPs are bound only for the VRRP
// groups this host is MASTER of (decision 2 in DESIGN.md), or all of them when VRRP is off.
import { join } from 'node:path';
import type { VirtualServiceView, VrrpGroupView } from '../api/state.js';
import type { Config, Forwarding } from '../config/types.js';
import { IpvsClient, type TableEntry } from '../ipvs/index.js';
import type { DesiredState } from '../model/types.js';
import { OwnedServices } from '../reconcile/ownership.js';
import { Reconciler, vipOfKey, type PassReport } from '../reconcile/reconciler.js';
import { describeFinding, reconcileHostSysctls, sysctlNeeds, type SysctlFinding } from '../sysctl/index.js';
import type { Logger } from '../util/log.js';
import { JsonFileOwnership, VipBinder } from '../vip/index.js';
import { VrrpController } from '../vrrp/index.js';
import type { SyncMode } from '../vrrp/index.js';
import type { DataPlane, DataPlaneHealth, DataPlaneHooks, ReconcileResult } from './dataplane.js';

export function makeKernelDataPlane(config: Config, log: Logger, hooks: DataPlaneHooks = {}): DataPlane {
  return new KernelDataPlane(config, log, hooks);
}

const result = (r: PassReport): ReconcileResult => ({ operations: r.operations, errors: r.errors, durationMs: r.durationMs, byKind: r.byKind, kernelRead: r.kernelRead, drifted: r.drifted });

const NO_GROUP = '';

export class KernelDataPlane implements DataPlane {
  private client: IpvsClient | undefined;
  private binder: VipBinder | undefined;
  private vrrpController: VrrpController | undefined;
  private reconciler: Reconciler | undefined;
  private desired: DesiredState = { virtualServices: [], problems: [] };
  /** No pass runs before the first desired state: an empty one would remove every owned service (fail static
   * while start-up still waits for the Kubernetes API). */
  private haveDesired = false;
  /** Desired VIPs by VRRP group ('' when VRRP is off). */
  private vipsByGroup = new Map<string, Set<string>>();
  private readonly masterOf = new Set<string>();
  private readonly since = new Map<string, { state: string; at: string; transitions: number }>();
  private vipChain: Promise<void> = Promise.resolve();
  private startError: string | undefined;
  private sysctls: SysctlFinding[] = [];
  private sysctlReport = '';
  /** Forwarding methods the desired state uses (annotations may pick one no pool names). */
  private forwardingInUse = new Set<Forwarding>();

  constructor(private config: Config, private readonly log: Logger, private readonly hooks: DataPlaneHooks = {}) {}

  /** Checks the host's kernel settings (and fixes what sysctl.manage allows); logs only what changed. */
  private refreshSysctls(): void {
    let r;
    try {
      r = reconcileHostSysctls(sysctlNeeds(this.config, this.forwardingInUse), { manage: this.config.sysctl.manage });
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
    } catch (err) {
      this.startError = `kernel: ${(err as Error).message}`;
      this.log.error({ err: this.startError }, 'IPVS is not available; nothing will be programmed');
      return;
    }
    this.refreshSysctls();
    this.reconciler = new Reconciler({
      client: this.client, owned: new OwnedServices(join(c.stateDir, 'ipvs-owned.json')), log: this.log, coalesceMs: c.reconcile.coalesceMs,
      onPass: (r) => this.hooks.onReconcile?.(result(r)),
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
        vips: { bindGroup: (g) => this.bindGroup(g), releaseGroup: (g) => this.releaseGroup(g) },
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
    this.desired = desired;
    this.haveDesired = true;
    const byGroup = new Map<string, Set<string>>();
    for (const v of desired.virtualServices) {
      const g = this.config.vrrp.enabled ? (v.vrrpGroup ?? NO_GROUP) : NO_GROUP;
      if (!byGroup.has(g)) byGroup.set(g, new Set());
      byGroup.get(g)!.add(v.vip);
    }
    this.vipsByGroup = byGroup;
    const methods = new Set(desired.virtualServices.map((v) => v.forwarding));
    const newMethod = [...methods].some((m) => !this.forwardingInUse.has(m));
    this.forwardingInUse = methods;
    if (newMethod && this.client) this.refreshSysctls();
    this.reconciler?.update(desired.virtualServices, desired.virtualServices.map((v) => v.vip));
    void this.queueVipSync();
  }

  /** Bound VIPs follow the desired set for the groups we are master of; everything else is released. */
  private queueVipSync(): Promise<void> {
    this.vipChain = this.vipChain.then(async () => {
      const b = this.binder;
      if (!b) return;
      const want = new Set<string>();
      for (const g of this.masterOf) for (const v of this.vipsByGroup.get(g) ?? []) want.add(v);
      for (const vip of want) {
        try {
          await b.bind(vip);
        } catch (err) {
          this.log.error({ vip, err: (err as Error).message }, 'could not bind VIP');
        }
      }
      for (const vip of b.ownedAddresses()) {
        if (want.has(vip)) continue;
        try {
          await b.unbind(vip);
        } catch (err) {
          this.log.error({ vip, err: (err as Error).message }, 'could not release VIP');
        }
      }
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

  private async setSyncMode(mode: SyncMode): Promise<void> {
    const client = this.client;
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
    this.reconciler.update(this.desired.virtualServices, this.desired.virtualServices.map((v) => v.vip));
    return result(await this.reconciler.reconcileNow({ read: true }));
  }

  async reconfigure(config: Config): Promise<void> {
    this.config = config;
    if (this.client) this.refreshSysctls();
    if (this.vrrpController) await this.vrrpController.applyConfig(config.vrrp);
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
    // Two reads whatever the table's size (service counters over netlink, destinations from /proc/net/ip_vs).
    const snapshot: TableEntry[] = await this.client.table({ stats: true });
    const byKey = new Map(this.desired.virtualServices.map((v) => [v.key, v]));
    const views: VirtualServiceView[] = [];
    for (const s of snapshot) {
      if (s.service.address === undefined || s.service.protocol === undefined) continue;
      const proto = s.service.protocol.toUpperCase();
      const key = `${proto}/${s.service.address.includes(':') ? `[${s.service.address}]` : s.service.address}:${s.service.port}`;
      const want = byKey.get(key);
      const nodes = new Map(want?.realServers.map((r) => [r.address, r]) ?? []);
      views.push({
        key, vip: vipOfKey(key), protocol: proto, port: s.service.port, scheduler: s.service.scheduler,
        forwarding: s.destinations[0]?.forwarding ?? want?.forwarding ?? '', service: want?.service, owned: want !== undefined,
        stats: { connections: Number(s.service.stats.conns), packetsIn: Number(s.service.stats.inpkts), packetsOut: Number(s.service.stats.outpkts), bytesIn: Number(s.service.stats.inbytes), bytesOut: Number(s.service.stats.outbytes), cps: Number(s.service.stats.cps) },
        realServers: s.destinations.map((d) => ({
          address: d.address, port: d.port, node: nodes.get(d.address)?.node ?? '', weight: d.weight, state: nodes.get(d.address)?.state ?? 'unknown',
          health: 'unknown' as const, activeConnections: d.activeConns, inactiveConnections: d.inactiveConns,
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
      vips: [...(this.vipsByGroup.get(name) ?? [])].sort(),
    }));
  }

  async stop(): Promise<void> {
    this.reconciler?.stop();
    if (this.vrrpController) {
      // keepalived stops with us, so a peer becomes master: holding the VIPs too would split the traffic.
      await this.vrrpController.stop();
      this.masterOf.clear();
      await this.queueVipSync();
    } else {
      // A lone LB host keeps its VIPs like its IPVS table, so a restart drops nothing; the next start adopts
      // them from the ownership record.
      await this.vipChain;
    }
    await this.binder?.close();
    this.client?.close();
  }
}
