// Thin adapters from the VRRP effects to the kernel modules: the VIP binder of src/vip (per interface) and
// the IPVS sync daemons of src/ipvs. They depend only on the few methods they call, so src/vrrp does not
// import those modules; the decisions they make are pure functions below.
import type { PoolConfig } from '../config/types.js';
import { parseIp } from '../ipam/address.js';
import { rangeContains } from '../ipam/range.js';
import type { SyncDaemonController, VipController } from './effects.js';
import { groupForVip } from './groups.js';
import type { SyncMode } from './state.js';

/** address → VRRP group: the pool's vrrpGroup, else the stable hash over the group names. */
export function vipGroupResolver(pools: readonly PoolConfig[], groupNames: readonly string[]): (address: string) => string | undefined {
  return (address) => {
    const ip = parseIp(address);
    const pool = ip ? pools.find((p) => p.addresses.some((r) => rangeContains(r, ip.family, ip.value))) : undefined;
    return groupForVip(address, pool?.vrrpGroup, groupNames);
  };
}

/** What GroupVipController needs of src/vip's VipBinder. */
export interface VipBinderLike {
  bind(address: string): Promise<unknown>;
  unbind(address: string): Promise<unknown>;
  /** The VIPs this binder added (its ownership record survives restarts). */
  ownedAddresses(): string[];
  /** Sends the address's announcements (GARP) again; absent = the binder cannot, and nothing is sent. */
  announce?(address: string): void;
}

/**
 * Binds a group's VIPs (the ones the model wants now) and releases the group's VIPs (the ones the binder's
 * ownership record holds, so VIPs left by a crashed predecessor or by a Service deleted meanwhile go too).
 * Every address is tried; failures are collected into one error so one bad VIP does not keep the others down.
 */
export class GroupVipController implements VipController {
  constructor(
    private readonly binderFor: (group: string) => VipBinderLike,
    private readonly wanted: (group: string) => readonly string[],
    private readonly groupOf: (address: string) => string | undefined,
  ) {}

  async bindGroup(group: string): Promise<void> {
    await each(this.wanted(group), (a) => this.binderFor(group).bind(a), `bind group ${group}`);
  }

  async releaseGroup(group: string): Promise<void> {
    const binder = this.binderFor(group);
    const mine = binder.ownedAddresses().filter((a) => this.groupOf(a) === group);
    await each(mine, (a) => binder.unbind(a), `release group ${group}`);
  }

  async announceGroup(group: string): Promise<void> {
    const binder = this.binderFor(group);
    for (const a of binder.ownedAddresses()) if (this.groupOf(a) === group) binder.announce?.(a);
  }
}

// One address at a time: the binder rewrites its ownership record on every bind and unbind, and concurrent
// rewrites of that file collide (measured: ENOENT on the rename of its temp file).
async function each(addresses: readonly string[], op: (a: string) => Promise<unknown>, what: string): Promise<void> {
  const failed: string[] = [];
  for (const a of addresses) {
    try {
      await op(a);
    } catch (err) {
      failed.push(`${a}: ${(err as Error).message}`);
    }
  }
  if (failed.length > 0) throw new Error(`${what}: ${failed.join('; ')}`);
}

export interface SyncDaemonSpecLike {
  role: 'master' | 'backup';
  interface: string;
  syncId: number;
}

/** What IpvsSyncDaemons needs of src/ipvs's IpvsClient. */
export interface SyncDaemonApi {
  syncDaemons(): Promise<SyncDaemonSpecLike[]>;
  startSyncDaemon(spec: SyncDaemonSpecLike): Promise<void>;
  stopSyncDaemon(role: 'master' | 'backup'): Promise<void>;
}

export type SyncOp = { op: 'stop'; role: 'master' | 'backup' } | { op: 'start'; spec: SyncDaemonSpecLike };

/** The stops and starts that turn the running sync daemons into `mode` on the configured interface and id. */
export function planSyncDaemons(running: readonly SyncDaemonSpecLike[], mode: SyncMode, want: { interface: string; syncId: number }): SyncOp[] {
  const ops: SyncOp[] = [];
  for (const role of ['master', 'backup'] as const) {
    const have = running.find((r) => r.role === role);
    const fits = have !== undefined && have.interface === want.interface && have.syncId === want.syncId;
    // A daemon with another interface or id is restarted; the kernel has no "modify".
    if (have && (!mode[role] || !fits)) ops.push({ op: 'stop', role });
    if (mode[role] && !fits) ops.push({ op: 'start', spec: { role, interface: want.interface, syncId: want.syncId } });
  }
  return ops;
}

export class IpvsSyncDaemons implements SyncDaemonController {
  constructor(
    private readonly api: SyncDaemonApi,
    private readonly want: { interface: string; syncId: number },
  ) {}

  async setMode(mode: SyncMode): Promise<void> {
    for (const op of planSyncDaemons(await this.api.syncDaemons(), mode, this.want)) {
      if (op.op === 'stop') await this.api.stopSyncDaemon(op.role);
      else await this.api.startSyncDaemon(op.spec);
    }
  }
}
