// Exponential backoff with full jitter (the AWS "full jitter" scheme): retries of many LB hosts against one
// API server spread out instead of arriving in lockstep.
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  factor?: number;
  random?: () => number;
}

export class Backoff {
  private attempt = 0;
  constructor(private readonly opts: BackoffOptions) {}

  /** The delay before the next retry; grows until reset(). */
  next(): number {
    const cap = Math.min(this.opts.maxMs, this.opts.initialMs * (this.opts.factor ?? 2) ** this.attempt);
    this.attempt++;
    const r = (this.opts.random ?? Math.random)();
    // Never zero: half the cap plus jitter keeps a floor so a hot error loop cannot spin.
    return Math.round(cap / 2 + (r * cap) / 2);
  }

  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}

export const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
