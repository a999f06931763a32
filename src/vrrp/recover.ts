// Reading back the state of a keepalived that was running before the daemon started. keepalived 2.2.7 does
// not replay states into notify_fifo when a reader appears, and `fifo_write_vrrp_states_on_reload` wrote
// nothing on SIGHUP in our trials, so the reliable source is its JSON dump: the signal named by
// `keepalived --signum=JSON` makes the VRRP process write /tmp/keepalived.json (in keepalived's own mount
// namespace), one object per instance with `iname` and a numeric `state`.
import { readFile, stat } from 'node:fs/promises';
import { execa } from 'execa';
import type { ReportedState } from './state.js';

export const DEFAULT_JSON_DUMP = '/tmp/keepalived.json';

// keepalived's vrrp.h: VRRP_STATE_INIT 0, BACK 1, MAST 2, FAULT 3, DELETED 97, STOP 98.
const stateCodes: Record<number, ReportedState> = { 0: 'INIT', 1: 'BACKUP', 2: 'MASTER', 3: 'FAULT', 97: 'DELETED', 98: 'STOP' };

export function parseJsonDump(text: string): Record<string, ReportedState> {
  const out: Record<string, ReportedState> = {};
  const doc: unknown = JSON.parse(text);
  if (!Array.isArray(doc)) throw new Error('keepalived JSON dump is not a list of instances');
  for (const item of doc) {
    const data = (item as { data?: { iname?: unknown; state?: unknown } } | null)?.data;
    if (!data || typeof data.iname !== 'string' || typeof data.state !== 'number') continue;
    const state = stateCodes[data.state];
    if (state) out[data.iname] = state;
  }
  return out;
}

export async function jsonSignalNumber(keepalivedPath: string): Promise<number> {
  const r = await execa(keepalivedPath, ['--signum=JSON'], { timeout: 5_000, stdin: 'ignore' });
  const n = Number(r.stdout.trim());
  if (!Number.isInteger(n) || n <= 0) throw new Error(`keepalived --signum=JSON printed ${JSON.stringify(r.stdout)}`);
  return n;
}

async function mtimeMs(path: string): Promise<number> {
  try {
    return (await stat(path)).mtimeMs;
  } catch {
    return -1;
  }
}

/**
 * Ask a running keepalived for its instance states. `signal` delivers the dump signal to keepalived and
 * returns false if it could not. Resolves undefined when no fresh dump appears within the timeout.
 */
export async function requestStates(
  signal: (sig: number) => boolean,
  opts: { keepalivedPath: string; dumpFile?: string; timeoutMs?: number },
): Promise<Record<string, ReportedState> | undefined> {
  const file = opts.dumpFile ?? DEFAULT_JSON_DUMP;
  const sig = await jsonSignalNumber(opts.keepalivedPath);
  const before = await mtimeMs(file);
  if (!signal(sig)) return undefined;
  const deadline = Date.now() + (opts.timeoutMs ?? 3_000);
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 25));
    if ((await mtimeMs(file)) === before) continue;
    try {
      return parseJsonDump(await readFile(file, 'utf8'));
    } catch {
      // Caught mid-write: the next poll reads the finished file.
    }
  }
  return undefined;
}
