// The one poller of the lab and the tests: wait until a check yields a value, and say what was awaited when
// it never does. Every "wait for X" in lab/ and test/ goes through it, so a timeout always names what it
// waited for, the last error the check threw and whatever state the caller can describe.

export interface PollOptions {
  /** Give up after this long (default 60 s). Callers in the lab scale it with labTimeScale(). */
  timeoutMs?: number;
  /** Pause between checks (default 300 ms). */
  everyMs?: number;
  /** State to append to the timeout's message (a daemon's log, `ipvsadm -Ln`); its own failure is reported. */
  describe?: () => string | Promise<string>;
  /** Prefix of the timeout's message (default "timed out waiting for"). */
  prefix?: string;
}

/** Calls `check` until it returns something other than undefined, and returns that. A check that throws
 * counts as not yet (its last error is in the timeout's message). */
export async function poll<T>(what: string, check: () => Promise<T | undefined> | T | undefined, opts: PollOptions = {}): Promise<T> {
  const end = Date.now() + (opts.timeoutMs ?? 60_000);
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) {
      const extra = opts.describe ? `\n${await Promise.resolve().then(opts.describe).catch((e: unknown) => `(describing the state failed: ${String(e)})`)}` : '';
      throw new Error(`${opts.prefix ?? 'timed out waiting for'} ${what}${last !== undefined ? ` (last error: ${last instanceof Error ? last.message : String(last)})` : ''}${extra}`);
    }
    await new Promise((r) => setTimeout(r, opts.everyMs ?? 300));
  }
}
