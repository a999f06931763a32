// Keeps the kernel's IPVS table equal to the desired state: dump, diff, apply the minimal operations in one
// batched netlink exchange, record what we own. Updates arriving within the coalescing window are applied in
// one pass; a periodic resync repairs out-of-band edits (someone ran `ipvsadm -D`) and reports them.
import type { IpvsClient } from '../ipvs/index.js';
import type { DesiredVirtualService } from '../model/types.js';
import type { Logger } from '../util/log.js';
import { diff, toKernelService } from './diff.js';
import { fromKernel, toIpvsOp } from './kernel-map.js';
import type { OwnedServices } from './ownership.js';
import type { KernelService, Operation } from './types.js';

export interface ReconcilerOptions {
  client: Pick<IpvsClient, 'snapshot' | 'apply'>;
  owned: OwnedServices;
  log: Logger;
  coalesceMs: number;
  /** Called after each pass (metrics). */
  onPass?: (r: PassReport) => void;
}

export interface PassReport {
  operations: number;
  errors: number;
  durationMs: number;
  /** Operations by kind, e.g. { 'add-service': 1, 'update-destination': 2 }. */
  byKind: Record<string, number>;
  errorMessages: string[];
}

export class Reconciler {
  private desired: DesiredVirtualService[] = [];
  private vips = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<PassReport> | undefined;
  private rerun = false;
  passes = 0;
  lastReport: PassReport | undefined;
  lastActual: KernelService[] = [];

  constructor(private readonly o: ReconcilerOptions) {}

  /** The latest desired state and the VIPs we allocated (their services are ours even if not recorded). */
  update(desired: DesiredVirtualService[], allocatedVips: Iterable<string>): void {
    this.desired = desired;
    this.vips = new Set(allocatedVips);
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.reconcileNow().catch((err) => this.o.log.error({ err: (err as Error).message }, 'reconcile failed'));
    }, this.o.coalesceMs);
  }

  /** Runs a pass now; a pass already running is followed by exactly one more. */
  async reconcileNow(): Promise<PassReport> {
    if (this.running) {
      this.rerun = true;
      return this.running;
    }
    this.running = this.pass();
    try {
      return await this.running;
    } finally {
      this.running = undefined;
      if (this.rerun) {
        this.rerun = false;
        void this.reconcileNow();
      }
    }
  }

  private async pass(): Promise<PassReport> {
    const t0 = performance.now();
    const snapshot = await this.o.client.snapshot();
    const actual = snapshot.map(fromKernel).filter((s): s is KernelService => s !== undefined);
    this.lastActual = actual;
    const desired = this.desired.map(toKernelService);
    const owned = (key: string) => this.o.owned.has(key) || this.vips.has(vipOfKey(key));
    const ops = diff({ desired, actual, owned });
    const report: PassReport = { operations: ops.length, errors: 0, durationMs: 0, byKind: {}, errorMessages: [] };
    if (ops.length > 0) {
      // Out-of-band edits show up as operations on a pass that had nothing new to apply: say so.
      const results = await this.o.client.apply(ops.map(toIpvsOp));
      const added: string[] = [];
      const removed: string[] = [];
      results.forEach((r, i) => {
        const op = ops[i]!;
        report.byKind[op.op] = (report.byKind[op.op] ?? 0) + 1;
        if (r.error) {
          report.errors++;
          report.errorMessages.push(r.error.message);
          return;
        }
        if (op.op === 'add-service' || op.op === 'update-service') added.push(op.service.key);
        if (op.op === 'delete-service') removed.push(op.service.key);
      });
      this.o.owned.update(added, removed);
      if (report.errors > 0) this.o.log.error({ errors: report.errorMessages.slice(0, 10), count: report.errors }, 'some kernel operations failed; the next pass retries them');
      this.o.log.info({ operations: ops.length, byKind: report.byKind }, 'kernel reconciled');
    }
    report.durationMs = Math.round((performance.now() - t0) * 100) / 100;
    this.passes++;
    this.lastReport = report;
    this.o.onPass?.(report);
    return report;
  }

  /** The operations a pass would make now, without making them (tests, `doctor`). */
  async plan(): Promise<Operation[]> {
    const actual = (await this.o.client.snapshot()).map(fromKernel).filter((s): s is KernelService => s !== undefined);
    return diff({ desired: this.desired.map(toKernelService), actual, owned: (k) => this.o.owned.has(k) || this.vips.has(vipOfKey(k)) });
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}

/** `TCP/192.0.2.1:80` → `192.0.2.1`; `TCP/[2001:db8::1]:80` → `2001:db8::1`. */
export function vipOfKey(key: string): string {
  const rest = key.slice(key.indexOf('/') + 1);
  return rest.startsWith('[') ? rest.slice(1, rest.indexOf(']')) : rest.slice(0, rest.lastIndexOf(':'));
}
