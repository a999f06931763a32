// What doctor reads from the LB host itself: kernel modules, sysctls, and the helper programs the daemon
// runs. Thin readers only; the verdicts are in kernel.ts. Paths are parameters so tests can point them at a
// prepared tree.
import { access, readFile } from 'node:fs/promises';
import { release } from 'node:os';
import { execa } from 'execa';

export interface HostPaths {
  proc: string;
  sys: string;
  /** /lib/modules; the running kernel's tree is `<modules>/<release>`. */
  modules: string;
  release: string;
}

export const defaultHostPaths = (): HostPaths => ({ proc: '/proc', sys: '/sys', modules: '/lib/modules', release: release() });

/**
 * The one function doctor reads sysctls with: `net.ipv4.vs.conntrack` → the trimmed text of
 * /proc/sys/net/ipv4/vs/conntrack, or undefined when the key does not exist (module not loaded). It reads the
 * network namespace of this process, as the kernel does for /proc/sys/net. Kept this small so the daemon's
 * start-up sysctl checker and doctor can share one reader.
 */
export async function readSysctl(key: string, proc = '/proc'): Promise<string | undefined> {
  if (!/^[a-z0-9_.-]+$/i.test(key) || key.split('.').some((p) => p === '' || p === '..')) throw new Error(`not a sysctl key: ${JSON.stringify(key)}`);
  try {
    return (await readFile(`${proc}/sys/${key.replace(/\./g, '/')}`, 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export type ModuleState = 'loaded' | 'builtin' | 'available' | 'missing';

const moduleName = (file: string) => file.replace(/^.*\//, '').replace(/\.ko(\.(xz|gz|zst))?$/, '').replace(/-/g, '_');

async function listed(path: string, pick: (line: string) => string | undefined): Promise<Set<string>> {
  const out = new Set<string>();
  try {
    for (const line of (await readFile(path, 'utf8')).split('\n')) {
      const f = pick(line);
      if (f) out.add(moduleName(f));
    }
  } catch {
    // No such list (a kernel without modules, a minimal container): nothing is listed there.
  }
  return out;
}

/** Loaded (in /proc/modules or /sys/module), built in, available to modprobe, or not in this kernel at all. */
export async function moduleStates(names: readonly string[], p: HostPaths): Promise<Map<string, ModuleState>> {
  const dir = `${p.modules}/${p.release}`;
  const [loaded, builtin, available] = await Promise.all([
    listed(`${p.proc}/modules`, (l) => l.split(' ')[0] || undefined),
    listed(`${dir}/modules.builtin`, (l) => l.trim() || undefined),
    listed(`${dir}/modules.dep`, (l) => l.split(':')[0] || undefined),
  ]);
  const states = new Map<string, ModuleState>();
  for (const n of names) {
    const inSys = await access(`${p.sys}/module/${n}`).then(() => true, () => false);
    states.set(n, builtin.has(n) ? 'builtin' : loaded.has(n) || inSys ? 'loaded' : available.has(n) ? 'available' : 'missing');
  }
  return states;
}

export interface CommandProbe {
  found: boolean;
  exitCode: number | undefined;
  /** stdout and stderr together, trimmed. */
  output: string;
}

/** Runs a helper program the way the daemon would find it (PATH, or an absolute path), with a timeout. */
export async function probeCommand(cmd: string, args: string[]): Promise<CommandProbe> {
  const r = await execa(cmd, args, { reject: false, timeout: 5000, all: true, stdin: 'ignore' });
  const missing = (r as { code?: string }).code === 'ENOENT' || /ENOENT/.test(String(r.message ?? ''));
  return { found: !missing, exitCode: r.exitCode, output: String(r.all ?? '').trim() };
}
