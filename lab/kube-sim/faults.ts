// Failure injection: answer 429/500/503 for the next N matching requests or for a while, and delay every
// response. Pure bookkeeping; the server asks `next()` once per request.
import type { ApiError} from './status.js';
import { internalError, serviceUnavailable, tooManyRequests } from './status.js';

export interface FailureSpec {
  status: 429 | 500 | 503;
  /** Retry-After for 429 and 503 (default 1). */
  retryAfterSeconds?: number;
  /** Only requests with these verbs (get, list, watch, create, update, patch, delete, deletecollection). */
  verbs?: string[];
  /** Only requests for these resources ("services", "services/status", "leases"...). */
  resources?: string[];
}

interface Rule extends FailureSpec {
  remaining: number;
  until: number;
}

export class Faults {
  private rules: Rule[] = [];
  delayMs = 0;

  failNext(count: number, spec: FailureSpec): void {
    this.rules.push({ ...spec, remaining: count, until: Infinity });
  }

  failFor(ms: number, spec: FailureSpec, now = Date.now()): void {
    this.rules.push({ ...spec, remaining: Infinity, until: now + ms });
  }

  clear(): void {
    this.rules = [];
    this.delayMs = 0;
  }

  /** The error to answer this request with, if a rule applies (and uses up one of its count). */
  next(verb: string, resource: string, now = Date.now()): ApiError | undefined {
    this.rules = this.rules.filter((r) => r.remaining > 0 && r.until > now);
    const rule = this.rules.find((r) => (!r.verbs || r.verbs.includes(verb)) && (!r.resources || r.resources.includes(resource)));
    if (!rule) return undefined;
    rule.remaining--;
    const retry = rule.retryAfterSeconds ?? 1;
    if (rule.status === 429) return tooManyRequests(retry);
    if (rule.status === 503) return serviceUnavailable(retry);
    return internalError('injected failure (kube-sim)');
  }
}
