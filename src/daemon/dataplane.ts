// What the daemon asks of the kernel side (IPVS reconciler, VIP binder, VRRP). The control plane (watcher,
// IPAM, status) only hands it desired states; whatever implements it owns every kernel write.
import type { VirtualServiceView, VrrpGroupView } from '../api/state.js';
import type { Config } from '../config/types.js';
import type { DesiredState } from '../model/types.js';
import type { SysctlFinding } from '../sysctl/index.js';
import { DesiredIndex, type DesiredPatch } from './desired-index.js';

export interface ReconcileResult {
  operations: number;
  errors: number;
  durationMs: number;
  /** Operations by kind (add-service, update-destination, ...). */
  byKind?: Record<string, number>;
  /** Whether the pass read the kernel's table (a resync) or diffed against the remembered one. */
  kernelRead?: boolean;
  /** Owned virtual services a resync or verification found changed outside ipvs-lb (and restored). */
  drifted?: string[];
  /** Services a rolling verification re-read from the kernel (0 or absent for other passes). */
  verified?: number;
}

/** What the daemon wants to hear from a data plane it builds (metrics). */
export interface DataPlaneHooks {
  /** After every reconcile pass, whoever triggered it (update pass, resync, POST /reconcile). */
  onPass?: (r: ReconcileResult & { byKind: Record<string, number> }) => void;
}

export interface DataPlaneHealth {
  kernel: boolean;
  reconciledOnce: boolean;
  messages: string[];
  /** The LB host's kernel settings as last checked (docs/kernel.md, "Host settings"). */
  sysctls?: SysctlFinding[];
}

export interface DataPlane {
  start(): Promise<void>;
  /** The latest desired state, whole; applied after the coalescing window. */
  update(desired: DesiredState): void;
  /** A change of some keys of the desired state (after a first update()); applied the same way, at the cost
   * of the changed entries only. */
  patch(changes: DesiredPatch): void;
  reconcileNow(): Promise<ReconcileResult>;
  /** The rolling verification between resyncs (reconcile.verifyIntervalMs): re-reads the next `count`
   * services from the kernel and repairs those changed out of band. */
  verifyNow?(count: number): Promise<ReconcileResult>;
  reconfigure(config: Config): Promise<void>;
  health(): DataPlaneHealth;
  virtualServices(): Promise<VirtualServiceView[]>;
  vrrp(): VrrpGroupView[];
  /** The supervised keepalived (metrics); undefined when VRRP is off. */
  keepalived?(): { running: boolean; unexpectedExits: number } | undefined;
  /** Stops keepalived and, with VRRP, releases the VIPs (a peer takes over); without VRRP the VIPs stay, like the
   * IPVS table (fail static: a restart drops no traffic). */
  stop(): Promise<void>;
}

/**
 * For hosts that only allocate (or a first run without kernel access): keeps the desired state for the API
 * and reports that the kernel is not programmed.
 */
export class DesiredOnlyDataPlane implements DataPlane {
  private readonly desired = new DesiredIndex(() => '');
  private updates = 0;
  async start(): Promise<void> {}
  update(desired: DesiredState): void {
    this.desired.replace(desired.virtualServices);
    this.updates++;
  }
  patch(changes: DesiredPatch): void {
    if (this.updates === 0) return;
    this.desired.patch(changes);
    this.updates++;
  }
  async reconcileNow(): Promise<ReconcileResult> {
    return { operations: 0, errors: 0, durationMs: 0 };
  }
  async reconfigure(): Promise<void> {}
  health(): DataPlaneHealth {
    return { kernel: true, reconciledOnce: this.updates > 0, messages: ['data plane disabled (--no-kernel): the kernel is not programmed'] };
  }
  async virtualServices(): Promise<VirtualServiceView[]> {
    return this.desired.list().map((v) => ({
      key: v.key, vip: v.vip, protocol: v.protocol, port: v.port, scheduler: v.scheduler, forwarding: v.forwarding, service: v.service, owned: true,
      realServers: v.realServers.map((r) => ({ address: r.address, port: r.port, node: r.node, weight: r.weight, state: r.state, health: 'unknown' as const })),
    }));
  }
  vrrp(): VrrpGroupView[] {
    return [];
  }
  keepalived(): undefined {
    return undefined;
  }
  async stop(): Promise<void> {}
}
