// The per-Service data-plane annotations. Each parse returns the value or a problem naming the annotation
// and the value; the caller falls back to the pool or global default, so a bad annotation affects only its
// own Service and never stops the daemon.
import { forwardingMethods, schedulers, type Forwarding, type Scheduler } from '../config/types.js';

export const ANNOTATION_PREFIX = 'ipvs-lb.io/';
export const Annotations = {
  loadBalancerIPs: 'ipvs-lb.io/load-balancer-ips',
  addressPool: 'ipvs-lb.io/address-pool',
  allowSharedIP: 'ipvs-lb.io/allow-shared-ip',
  scheduler: 'ipvs-lb.io/scheduler',
  forwarding: 'ipvs-lb.io/forwarding',
  healthCheckInterval: 'ipvs-lb.io/health-check-interval',
  healthCheckTimeout: 'ipvs-lb.io/health-check-timeout',
  healthCheckRise: 'ipvs-lb.io/health-check-rise',
  healthCheckFall: 'ipvs-lb.io/health-check-fall',
  healthCheck: 'ipvs-lb.io/health-check',
} as const;

export type AnnotationResult<T> = { value: T | undefined; problem?: string };

function oneOf<T extends string>(annotations: Record<string, string> | undefined, key: string, allowed: readonly T[]): AnnotationResult<T> {
  const raw = annotations?.[key];
  if (raw === undefined) return { value: undefined };
  const v = raw.trim();
  if ((allowed as readonly string[]).includes(v)) return { value: v as T };
  return { value: undefined, problem: `annotation ${key} must be one of ${allowed.join(', ')} (got ${JSON.stringify(raw)})` };
}

export const schedulerAnnotation = (a: Record<string, string> | undefined): AnnotationResult<Scheduler> =>
  oneOf(a, Annotations.scheduler, schedulers);

export const forwardingAnnotation = (a: Record<string, string> | undefined): AnnotationResult<Forwarding> =>
  oneOf(a, Annotations.forwarding, forwardingMethods);
