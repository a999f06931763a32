// The desired kernel state: what every LB host should program, whatever it holds now. The reconciler diffs
// this against a kernel dump; the API shows it.
import type { Forwarding, Scheduler } from '../config/types.js';
import type { Family } from '../ipam/address.js';
import type { HealthCheckOverrides } from './annotations.js';

export type Protocol = 'TCP' | 'UDP' | 'SCTP';

export interface DesiredRealServer {
  /** Node address (canonical text) of the address family of the VIP. */
  address: string;
  /** Service port for DR and TUN (the packet keeps its destination); the nodePort for NAT. */
  port: number;
  weight: number;
  node: string;
  /** Why the weight is what it is, for the API and Events: serving, draining (NotReady or failed probe). */
  state: 'serving' | 'draining-not-ready' | 'draining-unhealthy';
}

export interface DesiredVirtualService {
  /** `PROTO/VIP:PORT` (IPv6 in brackets): one IPVS virtual service per (VIP, protocol, port). */
  key: string;
  vip: string;
  family: Family;
  protocol: Protocol;
  port: number;
  scheduler: Scheduler;
  /** IPVS scheduler flags by name, e.g. mh-fallback, mh-port. */
  schedulerFlags: string[];
  /** sessionAffinity: ClientIP → persistent service with this timeout. */
  persistenceTimeoutSeconds: number | undefined;
  forwarding: Forwarding;
  /** `namespace/name` of the Service that owns this (VIP, protocol, port). */
  service: string;
  serviceUid: string;
  pool: string;
  vrrpGroup: string | undefined;
  realServers: DesiredRealServer[];
  /** What src/health needs to probe this virtual service's nodes. */
  health?: VirtualServiceHealth;
}

export interface VirtualServiceHealth {
  /** Local: probe the Service's healthCheckNodePort on each node; Cluster: kube-proxy's health port. */
  trafficPolicy: 'Cluster' | 'Local';
  healthCheckNodePort: number | undefined;
  /** From the Service's ipvs-lb.io/health-check* annotations. */
  overrides: HealthCheckOverrides;
}

/** A problem with one Service's input that the model worked around; the watcher turns it into an Event. */
export interface ModelProblem {
  service: string;
  reason: 'InvalidAnnotation' | 'PortConflict' | 'NoBackendFamily';
  message: string;
}

export interface DesiredState {
  virtualServices: DesiredVirtualService[];
  problems: ModelProblem[];
}

export const virtualServiceKey = (protocol: Protocol, vip: string, port: number): string =>
  `${protocol}/${vip.includes(':') ? `[${vip}]` : vip}:${port}`;
