// Config values for the VRRP tests (documentation addresses only).
import type { VrrpConfig, VrrpGroupConfig } from '../../src/config/types.js';

export function group(over: Partial<VrrpGroupConfig> = {}): VrrpGroupConfig {
  return {
    name: 'a',
    virtualRouterId: 51,
    priority: 150,
    interface: 'eth0',
    advertIntervalSeconds: 0.1,
    preempt: false,
    preemptDelaySeconds: 0,
    peers: [],
    unicastSourceIp: undefined,
    trackInterfaces: [],
    ...over,
  };
}

export function vrrp(groups: VrrpGroupConfig[], over: Partial<VrrpConfig> = {}): VrrpConfig {
  return {
    enabled: true,
    routerId: 'lb1',
    keepalivedPath: '/usr/sbin/keepalived',
    configPath: '/run/ipvs-lb/keepalived.conf',
    garpRepeat: 3,
    garpIntervalMs: 100,
    syncDaemon: { enabled: true, interface: 'eth0', syncId: 1 },
    groups,
    ...over,
  };
}
