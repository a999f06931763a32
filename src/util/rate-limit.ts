// Client-side rate limit in the manner of client-go's token bucket: `qps` tokens per second, at most `burst`
// saved up. Every API request the daemon makes takes a token from one bucket, so the configured QPS/burst is
// the process's whole budget and the API server is never flooded by a burst of Service changes.
//
// Waiters are served by priority, then in arrival order: the Lease renewal first (losing it would stop
// allocation), then the work itself (lists, watches, status), and Events last, so feedback never slows
// allocation down and still stays inside the budget.
export type Priority = 'critical' | 'normal' | 'background';

const ORDER: readonly Priority[] = ['critical', 'normal', 'background'];

export class TokenBucket {
  private tokens: number;
  private last: number;
  private readonly queues: Record<Priority, Array<() => void>> = { critical: [], normal: [], background: [] };
  private timer: NodeJS.Timeout | undefined;
  /** Tokens handed out (requests made), by priority. */
  readonly granted: Record<Priority, number> = { critical: 0, normal: 0, background: 0 };

  constructor(readonly qps: number, readonly burst: number, private readonly now: () => number = () => performance.now()) {
    if (!(qps > 0) || !(burst >= 1)) throw new RangeError(`TokenBucket: qps must be > 0 and burst >= 1 (got ${qps}, ${burst})`);
    this.tokens = burst;
    this.last = now();
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.qps);
    this.last = t;
  }

  /** Resolves when a token is available. */
  take(priority: Priority = 'normal'): Promise<void> {
    this.refill();
    if (this.waiting === 0 && this.tokens >= 1) {
      this.tokens -= 1;
      this.granted[priority]++;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.queues[priority].push(() => {
        this.granted[priority]++;
        resolve();
      });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.timer || this.waiting === 0) return;
    // Whole milliseconds, at least one: a token 0.999999 full must not spin on zero-length timers.
    const wait = Math.max(1, Math.ceil(((1 - this.tokens) / this.qps) * 1000));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.refill();
      for (const p of ORDER) {
        const q = this.queues[p];
        while (q.length > 0 && this.tokens >= 1) {
          this.tokens -= 1;
          q.shift()!();
        }
      }
      this.schedule();
    }, wait);
  }

  /** Requests made so far. */
  get requests(): number {
    return this.granted.critical + this.granted.normal + this.granted.background;
  }

  get waiting(): number {
    return this.queues.critical.length + this.queues.normal.length + this.queues.background.length;
  }

  waitingAt(priority: Priority): number {
    return this.queues[priority].length;
  }
}
