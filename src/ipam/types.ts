// The vocabulary of IPAM: what a Service asks for, what it holds, why a request is refused, and the changes a
// decision makes (which the ledger writes). Nothing here knows about Kubernetes objects or SQLite.
import type { Family } from './address.js';

export type IpFamilyPolicy = 'SingleStack' | 'PreferDualStack' | 'RequireDualStack';
export type PortProtocol = 'TCP' | 'UDP' | 'SCTP';

export interface RequestedIp {
  family: Family;
  value: bigint;
  /** Canonical text. */
  address: string;
}

/** What IPAM needs to know about one Service, already parsed and validated. */
export interface ServiceRequest {
  uid: string;
  namespace: string;
  name: string;
  labels: Readonly<Record<string, string>>;
  namespaceLabels: Readonly<Record<string, string>>;
  /** From spec.loadBalancerIP and ipvs-lb.io/load-balancer-ips: at most one per family. */
  requestedIPs: RequestedIp[];
  /** From ipvs-lb.io/address-pool. */
  requestedPool: string | undefined;
  /** From ipvs-lb.io/allow-shared-ip. */
  sharingKey: string | undefined;
  /** The families wanted, primary first (spec.ipFamilies, completed for the dual-stack policies). */
  ipFamilies: Family[];
  ipFamilyPolicy: IpFamilyPolicy;
  /** `PROTOCOL/PORT` strings, sorted and unique: what a shared address must keep apart. */
  ports: string[];
  externalTrafficPolicy: 'Cluster' | 'Local';
  selector: Readonly<Record<string, string>> | undefined;
}

export const refusalReasons = [
  'PoolExhausted',
  'RequestedAddressOutsidePools',
  'RequestedAddressInUse',
  'SharingConflict',
  'FamilyUnavailable',
  'PoolNotAllowed',
  'UnknownPool',
  'InvalidAnnotation',
] as const;
export type RefusalReason = (typeof refusalReasons)[number];

/** Why a request cannot be met; `reason` is stable (Events, metrics, API), `message` is for people. */
export interface Refusal {
  reason: RefusalReason;
  message: string;
  family?: Family;
  pool?: string;
  address?: string;
  /** The annotation or field at fault (InvalidAnnotation). */
  annotation?: string;
  value?: string;
  /** `namespace/name` of the Service holding what was asked for. */
  conflictsWith?: string;
}

/** One address held by one Service. A shared address has one Allocation per Service. */
export interface Allocation {
  uid: string;
  namespace: string;
  name: string;
  family: Family;
  /** Canonical text. */
  address: string;
  value: bigint;
  /** The pool the address came from when it was allocated (kept if the pool is later edited or removed). */
  pool: string;
  sharingKey: string | undefined;
  ports: string[];
  /** Milliseconds since the epoch. */
  allocatedAt: number;
}

export interface QuarantineEntry {
  family: Family;
  address: string;
  value: bigint;
  pool: string;
  /** Milliseconds since the epoch; the address is free again from this instant. */
  until: number;
  /** `namespace/name` of the last Service that held it: only that Service may ask for it back early. */
  releasedBy: string;
}

export type Change =
  | { kind: 'allocate'; allocation: Allocation; reason: string }
  | { kind: 'update'; allocation: Allocation; reason: string }
  | { kind: 'release'; allocation: Allocation; reason: string; quarantine: QuarantineEntry | undefined }
  | { kind: 'unquarantine'; entry: QuarantineEntry; reason: string };

export interface Decision {
  uid: string;
  /** False when the request was refused; the Service then keeps whatever it held before (`allocations`). */
  ok: boolean;
  /** What the Service holds after the decision, primary family first. */
  allocations: Allocation[];
  refusal: Refusal | undefined;
  /** Families given up under PreferDualStack, with the reason; the Service is served on the others. */
  degraded: Refusal[];
  changes: Change[];
}
