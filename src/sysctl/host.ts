// The thin adapter between the sysctl checks and /proc/sys of this process's network namespace: read the
// values, write the fixes that are allowed, read again. Values under /proc/sys/net are per network namespace,
// so the daemon sees (and a lab test sets) those of the namespace it runs in.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkSysctls, sysctlKeys, sysctlPath, type SysctlFinding, type SysctlNeeds } from './checks.js';

export const PROC_SYS = '/proc/sys';

/** Reads each key; a key that does not exist or cannot be read is undefined. */
export function readSysctls(keys: Iterable<string>, root = PROC_SYS): Map<string, string | undefined> {
  const out = new Map<string, string | undefined>();
  for (const key of keys) {
    try {
      out.set(key, readFileSync(join(root, sysctlPath(key)), 'utf8').trim());
    } catch {
      out.set(key, undefined);
    }
  }
  return out;
}

/** Reads what the needs require and checks it. */
export function checkHostSysctls(needs: SysctlNeeds, root = PROC_SYS): SysctlFinding[] {
  return checkSysctls(needs, readSysctls(sysctlKeys(needs), root));
}

export interface SysctlChange {
  key: string;
  from: string | undefined;
  to: string;
}

export interface SysctlResult {
  /** The findings after any changes. */
  findings: SysctlFinding[];
  /** What was written. */
  changed: SysctlChange[];
  /** Writes the kernel refused, e.g. a read-only /proc/sys under systemd's ProtectKernelTunables=yes. */
  failed: Array<SysctlChange & { error: string }>;
}

/** Checks, and with `manage` writes every fix the checks allow, then checks again. */
export function reconcileHostSysctls(needs: SysctlNeeds, opts: { manage: boolean; root?: string }): SysctlResult {
  const root = opts.root ?? PROC_SYS;
  const first = checkHostSysctls(needs, root);
  const changed: SysctlChange[] = [];
  const failed: SysctlResult['failed'] = [];
  if (!opts.manage) return { findings: first, changed, failed };
  for (const f of first) {
    if (f.ok || !f.fix) continue;
    const c = { key: f.fix.key, from: f.actual, to: f.fix.value };
    try {
      writeFileSync(join(root, sysctlPath(f.fix.key)), `${f.fix.value}\n`);
      changed.push(c);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const why = e.code === 'EROFS' || e.code === 'EACCES' || e.code === 'EPERM'
        ? `${e.code}: /proc/sys is read-only for the daemon (ProtectKernelTunables=yes without the shipped unit's ReadWritePaths=/proc/sys/net, or no CAP_NET_ADMIN); set it in /etc/sysctl.d`
        : e.message;
      failed.push({ ...c, error: why });
    }
  }
  return { findings: changed.length > 0 ? checkHostSysctls(needs, root) : first, changed, failed };
}
