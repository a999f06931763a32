// Restart delays for keepalived: exponential with full jitter on the upper half, so several LB hosts that lose
// keepalived for one shared reason (a bad package upgrade) do not restart in lock step.

export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
  factor: number;
  /** 0 = no jitter; 0.5 = the delay is drawn from [d/2, d]. */
  jitter: number;
}

export const defaultBackoff: BackoffPolicy = { initialMs: 200, maxMs: 30_000, factor: 2, jitter: 0.5 };

/** Delay before restart number `attempt` (0-based). `random` returns [0, 1). */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const raw = Math.min(policy.maxMs, policy.initialMs * policy.factor ** Math.max(0, attempt));
  const jitter = Math.min(1, Math.max(0, policy.jitter));
  return Math.round(raw * (1 - jitter * random()));
}
