// Which IPVS schedulers this kernel has. The kernel offers no list over netlink or /proc (/proc/net/ip_vs shows
// only the services), so we read what the module system knows: loaded modules (/proc/modules), built-in ones
// (modules.builtin) and loadable ones (kernel/net/netfilter/ipvs/ip_vs_NAME.ko*). A scheduler that is
// loadable but not loaded is fine: the kernel runs request_module("ip_vs_NAME") itself on NEW_SERVICE when the
// daemon has CAP_SYS_MODULE; ensureScheduler() does the same explicitly and reports a clear error.
import { readdir, readFile } from 'node:fs/promises';
import { release } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { IpvsInputError } from './errors.js';

/** ip_vs_* modules that are not schedulers (application helpers, persistence engines). */
const notSchedulers = new Set(['ftp', 'pe_sip']);

export interface SchedulerAvailability {
  loaded: string[];
  builtin: string[];
  loadable: string[];
}

/** Scheduler names in a /proc/modules text. */
export function parseProcModules(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^ip_vs_([a-z0-9_]+)\s/.exec(line);
    if (m && !notSchedulers.has(m[1]!)) out.push(m[1]!);
  }
  return out.sort();
}

/** Scheduler names in a list of module paths (modules.builtin lines or file names). */
export function parseModulePaths(paths: readonly string[]): string[] {
  const out = new Set<string>();
  for (const p of paths) {
    const m = /(?:^|\/)ip_vs_([a-z0-9_]+)\.ko(?:\.(?:xz|zst|gz))?$/.exec(p.trim());
    if (m && !notSchedulers.has(m[1]!)) out.add(m[1]!);
  }
  return [...out].sort();
}

export async function availableSchedulers(modulesRoot = join('/lib/modules', release()), procModules = '/proc/modules'): Promise<SchedulerAvailability> {
  const loaded = parseProcModules(await readFile(procModules, 'utf8').catch(() => ''));
  const builtin = parseModulePaths((await readFile(join(modulesRoot, 'modules.builtin'), 'utf8').catch(() => '')).split('\n'));
  const loadable = parseModulePaths(await readdir(join(modulesRoot, 'kernel/net/netfilter/ipvs')).catch(() => [] as string[]));
  return { loaded, builtin, loadable };
}

/** Loads ip_vs_NAME unless it is already loaded or built in; throws a clear error when it cannot be had. */
export async function ensureScheduler(name: string, modulesRoot?: string, procModules?: string): Promise<void> {
  if (!/^[a-z0-9_]{1,15}$/.test(name)) throw new IpvsInputError('scheduler', name, 'must be a scheduler name such as rr, wlc or mh');
  const a = await availableSchedulers(modulesRoot, procModules);
  if (a.loaded.includes(name) || a.builtin.includes(name)) return;
  const r = await execa('modprobe', [`ip_vs_${name}`], { reject: false });
  if (r.exitCode !== 0) {
    throw new Error(`scheduler ${name}: kernel module ip_vs_${name} could not be loaded (modprobe: ${String(r.stderr).trim() || `exit ${r.exitCode}`})`);
  }
}
