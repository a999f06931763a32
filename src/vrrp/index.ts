// Public surface of the VRRP module.
export { VrrpController, type VrrpControllerOptions } from './controller.js';
export { EffectRunner, type VipController, type SyncDaemonController, type EffectSink } from './effects.js';
export { renderKeepalivedConf, keepalivedPaths, markerAddress, DAEMON_PROCESS_NAME, type DaemonTracking, type RenderOptions, type KeepalivedPaths } from './render.js';
export { checkKeepalivedConfig, parseCheckOutput, type CheckResult, type CheckMessage } from './check.js';
export { installKeepalivedConfig, KeepalivedConfigError } from './install.js';
export { parseNotifyLine, type NotifyEvent } from './notify.js';
export { NotifyFifo, ensureFifo } from './fifo.js';
export { reduce, initialWorld, type VrrpWorld, type VrrpEvent, type VrrpEffect, type SyncMode, type GroupPhase } from './state.js';
export { KeepalivedSupervisor, type SupervisorOptions } from './supervisor.js';
export { backoffDelay, defaultBackoff, type BackoffPolicy } from './backoff.js';
export { groupForVip } from './groups.js';
export { RenderError } from './safe.js';
export { chooseTracking, claimDaemonIdentity, inInitialNetns } from './tracking.js';
export { GroupVipController, IpvsSyncDaemons, planSyncDaemons, vipGroupResolver, type VipBinderLike, type SyncDaemonApi } from './adapters.js';
