// The per-target, per-policy health state machine: `fall` consecutive failures take a target down, `rise`
// consecutive successes bring it back, and flap damping (the exponential-decay penalty of BGP route flap
// damping, RFC 2439) holds a target down that keeps falling, until it has been stable for a while. Pure: the
// caller passes the time, so tests drive it without clocks.
import type { Policy, Status } from './types.js';

export interface CheckState {
  status: Status;
  /** Consecutive successes and failures (one of them is 0). */
  successes: number;
  failures: number;
  /** When the status last changed (ms since the epoch); 0 while unknown. */
  since: number;
  /** Damping penalty as of penaltyAt; it halves every half-life. */
  penalty: number;
  penaltyAt: number;
  /** Held down by damping although the probes may pass. */
  suppressed: boolean;
  /** Falls from up to down so far. */
  flaps: number;
  lastAt: number;
  lastOk: boolean | undefined;
  lastError: string | undefined;
  lastLatencyMs: number | undefined;
}

export const initialState = (): CheckState => ({
  status: 'unknown', successes: 0, failures: 0, since: 0, penalty: 0, penaltyAt: 0, suppressed: false,
  flaps: 0, lastAt: 0, lastOk: undefined, lastError: undefined, lastLatencyMs: undefined,
});

/** The penalty decayed to `now`. */
export function penaltyAt(s: CheckState, now: number, policy: Policy): number {
  const d = policy.damping;
  if (!d || s.penalty === 0) return 0;
  return s.penalty * 2 ** (-Math.max(0, now - s.penaltyAt) / (d.halfLifeSeconds * 1000));
}

/**
 * One probe result. A result slower than the policy's timeout is a failure for this policy even when the
 * probe, run with the longer timeout `probeTimeoutMs` of another policy sharing the target, got an answer.
 * With the probe's own timeout the probe decided already: an answer handled before its timer counts, however
 * late a busy event loop got to it.
 */
export function observe(prev: CheckState, r: { ok: boolean; latencyMs: number; error?: string }, now: number, policy: Policy, probeTimeoutMs = Infinity): CheckState {
  const tooSlow = r.ok && r.latencyMs > policy.timeoutMs && policy.timeoutMs < probeTimeoutMs;
  const ok = r.ok && !tooSlow;
  const s: CheckState = {
    ...prev,
    lastAt: now, lastOk: ok, lastLatencyMs: r.latencyMs,
    lastError: ok ? undefined : tooSlow ? `answered after ${Math.round(r.latencyMs)} ms, beyond the ${policy.timeoutMs} ms timeout` : (r.error ?? 'failed'),
  };
  const d = policy.damping;
  let penalty = penaltyAt(prev, now, policy);
  if (d && s.suppressed && penalty < d.reuseThreshold) s.suppressed = false;

  if (ok) {
    s.successes = prev.successes + 1;
    s.failures = 0;
    // An unknown target serves already (optimistic start); its first success just makes that known.
    if (s.status === 'unknown' || (s.status === 'down' && s.successes >= policy.rise && !s.suppressed)) {
      s.since = now;
      s.status = 'up';
    }
  } else {
    s.failures = prev.failures + 1;
    s.successes = 0;
    if (s.status !== 'down' && s.failures >= policy.fall) {
      if (d && s.status === 'up') {
        // The ceiling keeps the hold after the last flap within maxSuppressSeconds.
        const ceiling = d.reuseThreshold * 2 ** (d.maxSuppressSeconds / d.halfLifeSeconds);
        penalty = Math.min(penalty + 1, ceiling);
        if (penalty >= d.suppressThreshold) s.suppressed = true;
      }
      if (s.status === 'up') s.flaps = prev.flaps + 1;
      s.status = 'down';
      s.since = now;
    }
  }
  s.penalty = penalty;
  s.penaltyAt = now;
  return s;
}

/** A settled healthy state needs no attention (the DR sweep uses this to decide what to re-probe). */
export const settled = (s: CheckState): boolean => s.status === 'up' && s.failures === 0 && !s.suppressed;

/** When a suppressed state will be released if nothing else happens (for the API). */
export function releaseAt(s: CheckState, policy: Policy): number | undefined {
  const d = policy.damping;
  if (!d || !s.suppressed || s.penalty <= 0) return undefined;
  return s.penaltyAt + Math.log2(s.penalty / d.reuseThreshold) * d.halfLifeSeconds * 1000;
}
