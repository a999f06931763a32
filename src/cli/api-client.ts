// How the CLI reaches the local daemon: the API address and token come from the same config file the daemon
// reads, so `ipvs-lb status` needs no flags on an LB host.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/types.js';

export class CliError extends Error {
  constructor(message: string, readonly exitCode: number) {
    super(message);
  }
}

/** The API did not answer at all (refused, timed out): the daemon is down or listens elsewhere. */
export class ApiUnreachableError extends CliError {
  constructor(readonly base: string, readonly reason: string) {
    super(`cannot reach the ipvs-lb API at ${base} (${reason}); is the daemon running?`, 3);
  }
}

export interface ApiClient {
  get<T>(path: string): Promise<T>;
  /** GET that also accepts the listed error statuses as answers (e.g. /readyz's 503 carries the health report). */
  getAccepting<T>(path: string, statuses: number[]): Promise<T>;
  post<T>(path: string): Promise<T>;
  readonly base: string;
}

export async function configFor(path: string): Promise<Config> {
  const r = await loadConfig(path);
  if (!r.ok) throw new CliError(`invalid configuration ${path}:\n  ${r.problems.join('\n  ')}`, 1);
  return r.config;
}

function token(config: Config): string | undefined {
  const file = config.api.tokenFile ?? join(config.stateDir, 'api-token');
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

export function apiClient(config: Config, opts: { url?: string; token?: string } = {}): ApiClient {
  const { host, port } = config.api.listen;
  const h = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  const base = opts.url ?? `${config.api.tls ? 'https' : 'http'}://${h.includes(':') ? `[${h}]` : h}:${port}`;
  const bearer = opts.token ?? token(config);
  const call = async <T>(method: string, path: string, accept: number[] = []): Promise<T> => {
    let res: Response;
    try {
      res = await fetch(`${base}${path}`, { method, headers: bearer ? { authorization: `Bearer ${bearer}` } : {}, signal: AbortSignal.timeout(10_000) });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
      throw new ApiUnreachableError(base, cause);
    }
    const text = await res.text();
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = text;
    }
    if (!res.ok && !accept.includes(res.status)) {
      const e = (body as { error?: { message?: string } } | undefined)?.error;
      throw new CliError(`${method} ${path}: ${res.status} ${e?.message ?? text}`, res.status === 401 ? 3 : 1);
    }
    return body as T;
  };
  return { base, get: (p) => call('GET', p), getAccepting: (p, statuses) => call('GET', p, statuses), post: (p) => call('POST', p) };
}
