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
  healthCheckDrPath: 'ipvs-lb.io/health-check-dr-path',
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

/** Per-Service health-check overrides; an absent field means the config's value. */
export interface HealthCheckOverrides {
  enabled?: boolean;
  intervalSeconds?: number;
  timeoutSeconds?: number;
  rise?: number;
  fall?: number;
  drPath?: boolean;
}

/** Seconds as a plain number ("2", "0.5") or with a unit ("500ms", "2s", "1m"). */
function seconds(raw: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(raw.trim());
  if (!m) return undefined;
  const v = Number(m[1]);
  return m[2] === 'ms' ? v / 1000 : m[2] === 'm' ? v * 60 : v;
}

function bool(a: Record<string, string> | undefined, key: string, problems: string[]): boolean | undefined {
  const raw = a?.[key];
  if (raw === undefined) return undefined;
  const v = raw.trim().toLowerCase();
  if (v === 'true' || v === 'false') return v === 'true';
  problems.push(`annotation ${key} must be true or false (got ${JSON.stringify(raw)})`);
  return undefined;
}

/**
 * The health-check annotations, checked against the same bounds as the config (and timeout < interval once
 * the config's values are filled in). A bad one is dropped with a problem; the others still apply.
 */
export function healthCheckAnnotations(
  a: Record<string, string> | undefined,
  defaults: { intervalSeconds: number; timeoutSeconds: number },
): { value: HealthCheckOverrides; problems: string[] } {
  const problems: string[] = [];
  const value: HealthCheckOverrides = {};
  if (!a) return { value, problems };
  const enabled = bool(a, Annotations.healthCheck, problems);
  if (enabled !== undefined) value.enabled = enabled;
  const drPath = bool(a, Annotations.healthCheckDrPath, problems);
  if (drPath !== undefined) value.drPath = drPath;
  const dur = (key: string, min: number, max: number): number | undefined => {
    const raw = a[key];
    if (raw === undefined) return undefined;
    const v = seconds(raw);
    if (v === undefined || v < min || v > max) {
      problems.push(`annotation ${key} must be a duration between ${min}s and ${max}s, such as "2", "2s" or "500ms" (got ${JSON.stringify(raw)})`);
      return undefined;
    }
    return v;
  };
  const count = (key: string): number | undefined => {
    const raw = a[key];
    if (raw === undefined) return undefined;
    const v = /^\d{1,3}$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
    if (!(v >= 1 && v <= 100)) {
      problems.push(`annotation ${key} must be an integer between 1 and 100 (got ${JSON.stringify(raw)})`);
      return undefined;
    }
    return v;
  };
  const interval = dur(Annotations.healthCheckInterval, 0.1, 3600);
  const timeout = dur(Annotations.healthCheckTimeout, 0.05, 3600);
  const effInterval = interval ?? defaults.intervalSeconds;
  const effTimeout = timeout ?? defaults.timeoutSeconds;
  if (effTimeout >= effInterval) {
    // Drop whichever annotation made the pair invalid, so the Service keeps a consistent pair.
    const culprit = timeout !== undefined ? Annotations.healthCheckTimeout : Annotations.healthCheckInterval;
    problems.push(`annotation ${culprit} must leave the timeout (${effTimeout}s) less than the interval (${effInterval}s) (got ${JSON.stringify(a[culprit])})`);
    if (timeout !== undefined) {
      if (interval !== undefined && defaults.timeoutSeconds < interval) value.intervalSeconds = interval;
    }
  } else {
    if (interval !== undefined) value.intervalSeconds = interval;
    if (timeout !== undefined) value.timeoutSeconds = timeout;
  }
  const rise = count(Annotations.healthCheckRise);
  if (rise !== undefined) value.rise = rise;
  const fall = count(Annotations.healthCheckFall);
  if (fall !== undefined) value.fall = fall;
  return { value, problems };
}
