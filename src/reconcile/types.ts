// The kernel's view of a virtual service, in the shape the reconciler compares: the IPVS client's dump is
// mapped to it, and desired virtual services are projected onto it.
import type { Forwarding, Scheduler } from '../config/types.js';
import type { Family } from '../ipam/address.js';
import type { Protocol } from '../model/types.js';

export interface KernelDestination {
  address: string;
  port: number;
  weight: number;
  forwarding: Forwarding;
}

export interface KernelService {
  key: string;
  family: Family;
  protocol: Protocol;
  address: string;
  port: number;
  scheduler: Scheduler | string;
  schedulerFlags: string[];
  /** Persistence timeout in seconds; undefined when the service is not persistent. */
  persistenceTimeoutSeconds: number | undefined;
  destinations: KernelDestination[];
}

export type Operation =
  | { op: 'add-service'; service: KernelService }
  | { op: 'update-service'; service: KernelService; changed: string[] }
  | { op: 'delete-service'; service: KernelService }
  | { op: 'add-destination'; service: KernelService; destination: KernelDestination }
  | { op: 'update-destination'; service: KernelService; destination: KernelDestination; changed: string[] }
  | { op: 'delete-destination'; service: KernelService; destination: KernelDestination };
