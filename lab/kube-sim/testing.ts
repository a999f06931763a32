// Small helpers for tests that drive the simulator.
import { ApiException } from '@kubernetes/client-node';

/** Polls `cond` until it holds; fails with `what` after `timeoutMs` (a safety net, not a timing assertion). */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 10_000, stepMs = 20): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** The Status object inside a client-node ApiException (its body arrives as a JSON string). */
export function statusOf(err: unknown): { code: number; reason?: string; message?: string; details?: { causes?: { field: string; reason: string; message: string }[]; retryAfterSeconds?: number } } {
  if (!(err instanceof ApiException)) throw err;
  const body: unknown = typeof err.body === 'string' ? JSON.parse(err.body) : err.body;
  return { code: err.code, ...(body as object) };
}
