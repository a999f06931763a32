// The kernel data plane: IPVS reconciler, VIP binder and VRRP, assembled for the daemon.
import type { Config } from '../config/types.js';
import type { Logger } from '../util/log.js';
import type { DataPlane } from './dataplane.js';

export function makeKernelDataPlane(_config: Config, _log: Logger): DataPlane {
  throw new Error('the kernel data plane is not wired into the daemon yet; run with --no-kernel');
}
