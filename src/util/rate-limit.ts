// Client-side rate limit in the manner of client-go's token bucket: `qps` tokens per second, at most `burst`
// saved up. Every API request the daemon makes takes a token, so the configured QPS is the only limit and
// the API server is never flooded by a burst of Service changes.
export class TokenBucket {
  private tokens: number;
  private last: number;
  private queue: Array<() => void> = [];
  private timer: NodeJS.Timeout | undefined;
  requests = 0;

  constructor(private readonly qps: number, private readonly burst: number, private readonly now: () => number = () => performance.now()) {
    this.tokens = burst;
    this.last = now();
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.qps);
    this.last = t;
  }

  /** Resolves when a token is available; waiters are served in arrival order. */
  take(): Promise<void> {
    this.requests++;
    this.refill();
    if (this.queue.length === 0 && this.tokens >= 1) {
      this.tokens -= 1;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.queue.push(resolve);
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.timer || this.queue.length === 0) return;
    const wait = Math.max(0, ((1 - this.tokens) / this.qps) * 1000);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.refill();
      while (this.queue.length > 0 && this.tokens >= 1) {
        this.tokens -= 1;
        this.queue.shift()!();
      }
      this.schedule();
    }, wait);
  }

  get waiting(): number {
    return this.queue.length;
  }
}
