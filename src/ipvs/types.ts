// The IPVS objects as the rest of ipvs-lb sees them: addresses as canonical text, enums as names, 64-bit
// counters as bigint (byte counters of a busy VIP pass 2^53 within months).
import type { Forwarding } from '../config/types.js';

export type Family = 4 | 6;
export type Protocol = 'tcp' | 'udp' | 'sctp';

/** A virtual service is named by (address, protocol, port) or by a firewall mark and an address family. */
export type ServiceKey = AddressServiceKey | FwmarkServiceKey;
export interface AddressServiceKey {
  address: string;
  protocol: Protocol;
  port: number;
  fwmark?: undefined;
}
export interface FwmarkServiceKey {
  fwmark: number;
  family: Family;
  address?: undefined;
}

/**
 * Scheduler flags. IPVS has three generic bits whose meaning depends on the scheduler; ipvsadm's names are
 * accepted as aliases: sh-fallback / mh-fallback = flag-1, sh-port / mh-port = flag-2.
 */
export type SchedulerFlag = 'flag-1' | 'flag-2' | 'flag-3';
export type SchedulerFlagInput = SchedulerFlag | 'sh-fallback' | 'sh-port' | 'mh-fallback' | 'mh-port';

export interface Persistence {
  /** Seconds a client sticks to its real server. */
  timeout: number;
  /** IPv4: a dotted netmask ("255.255.255.0"); IPv6: a prefix length (1-128). Default: one client address. */
  netmask?: string | number;
}

export type ServiceSpec = ServiceKey & {
  scheduler: string;
  schedulerFlags?: readonly SchedulerFlagInput[];
  persistence?: Persistence;
  onePacket?: boolean;
  /** Persistence engine, e.g. "sip". */
  persistenceEngine?: string;
};

export type TunnelType = 'ipip' | 'gue' | 'gre';
export interface TunnelOptions {
  type: TunnelType;
  /** UDP port of GUE encapsulation. */
  port?: number;
  checksum?: 'none' | 'csum' | 'remcsum';
}

export interface DestinationSpec {
  address: string;
  port: number;
  forwarding: Forwarding;
  weight: number;
  upperThreshold?: number;
  lowerThreshold?: number;
  /** Only with forwarding "tun"; default IPIP. */
  tunnel?: TunnelOptions;
}

export interface Stats {
  conns: bigint;
  inpkts: bigint;
  outpkts: bigint;
  inbytes: bigint;
  outbytes: bigint;
  cps: bigint;
  inpps: bigint;
  outpps: bigint;
  inbps: bigint;
  outbps: bigint;
}

export interface Service {
  family: Family;
  /** Undefined for a fwmark service. */
  protocol: Protocol | undefined;
  /** Canonical text; undefined for a fwmark service. */
  address: string | undefined;
  port: number;
  fwmark: number;
  scheduler: string;
  /** The raw flag word the kernel reported (includes the kernel-internal HASHED bit). */
  flags: number;
  schedulerFlags: SchedulerFlag[];
  onePacket: boolean;
  persistence: { timeout: number; netmask: string | number } | undefined;
  persistenceEngine: string | undefined;
  stats: Stats;
}

export type DecodedForwarding = Forwarding | 'local' | 'bypass';

export interface Destination {
  family: Family;
  address: string;
  port: number;
  forwarding: DecodedForwarding;
  weight: number;
  upperThreshold: number;
  lowerThreshold: number;
  activeConns: number;
  inactiveConns: number;
  persistentConns: number;
  tunnel: TunnelOptions | undefined;
  stats: Stats;
}

export interface IpvsInfo {
  /** "1.2.1" */
  version: string;
  versionCode: number;
  connTableSize: number;
}

export interface IpvsTimeouts {
  tcp: number;
  tcpFin: number;
  udp: number;
}

export type SyncRole = 'master' | 'backup';
export interface SyncDaemonSpec {
  role: SyncRole;
  interface: string;
  syncId: number;
  /** UDP payload size of sync messages. */
  maxLength?: number;
  /** IPv4 or IPv6 multicast group; the kernel's default is 224.0.0.81. */
  group?: string;
  port?: number;
  ttl?: number;
}
export interface SyncDaemon {
  role: SyncRole;
  interface: string;
  syncId: number;
  maxLength: number | undefined;
  group: string | undefined;
  port: number | undefined;
  ttl: number | undefined;
}
