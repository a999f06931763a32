// `ipvs-lb release-vips`: removes the VIPs a daemon that is gone left on the interface. A daemon that dies
// cannot release its VIPs, and under systemd its keepalived dies with it (KillMode=mixed), so the peer takes
// the groups over while this host still answers ARP for the same addresses. The unit runs this command as
// ExecStopPost, so the stale VIPs go at once instead of when the next daemon starts. Only addresses in the
// daemon's ownership record (stateDir/vips-owned.json) are touched, never one it did not add; with VRRP off
// nothing is removed (a lone LB host keeps serving while it restarts: fail static).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { JsonFileOwnership, VipBinder } from '../vip/index.js';
import { DAEMON_PROCESS_NAME, keepalivedPaths } from '../vrrp/render.js';
import { ExitCode } from './exit-codes.js';
import type { CliContext } from './context.js';

/** The pid in the daemon's pid file if that process is alive and is the daemon (guards against pid reuse). */
export function runningDaemon(pidFile: string): number | undefined {
  try {
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 1) return undefined;
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === DAEMON_PROCESS_NAME ? pid : undefined;
  } catch {
    return undefined;
  }
}

export function registerReleaseVips(program: Command, ctx: CliContext): void {
  program
    .command('release-vips')
    .description('remove the VIPs a stopped or crashed daemon left bound (systemd ExecStopPost); refuses while the daemon runs')
    .action(async () => {
      const path = ctx.configPath();
      const r = await loadConfig(path);
      if (!r.ok) {
        for (const p of r.problems) ctx.err(p);
        ctx.exit(ExitCode.failed);
        return;
      }
      const c = r.config;
      if (!c.vrrp.enabled) {
        ctx.out('VRRP is off: the VIPs stay bound (no peer takes them over; fail static)');
        return;
      }
      const pid = runningDaemon(keepalivedPaths(c.vrrp.configPath).daemonPid);
      if (pid !== undefined) {
        ctx.err(`the daemon is running (pid ${pid}); it releases its own VIPs`);
        ctx.exit(ExitCode.failed);
        return;
      }
      const store = new JsonFileOwnership(join(c.stateDir, 'vips-owned.json'));
      if ((await store.load()).every((o) => o.interface !== c.interface)) {
        ctx.out('no VIPs recorded; nothing to release');
        return;
      }
      const binder = await VipBinder.open({ interface: c.interface, store, announce: false });
      let failed = 0;
      try {
        for (const address of binder.ownedAddresses()) {
          try {
            ctx.out(`${address}: ${await binder.unbind(address)}`);
          } catch (err) {
            failed++;
            ctx.err(`${address}: ${(err as Error).message}`);
          }
        }
      } finally {
        await binder.close();
      }
      if (failed > 0) ctx.exit(ExitCode.failed);
    });
}
