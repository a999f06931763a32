import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { poolSize, summarizeConfig } from '../config/summary.js';
import type { Config } from '../config/types.js';
import { ExitCode } from './exit-codes.js';
import type { CliContext } from './context.js';
import { outputOption, render, type OutputFormat } from './output.js';

/** The parsed file as plain data for json/yaml (ranges as their text, sizes as decimal strings). */
function configData(c: Config) {
  return {
    valid: true, source: c.source, hostName: c.hostName, interface: c.interface, stateDir: c.stateDir,
    pools: c.pools.map((p) => ({
      name: p.name, size: poolSize(p).toString(), addresses: p.addresses.map((r) => r.text), autoAssign: p.autoAssign, avoidBuggyIPs: p.avoidBuggyIPs,
      forwarding: p.forwarding ?? null, scheduler: p.scheduler ?? null, vrrpGroup: p.vrrpGroup ?? null,
    })),
    vrrp: { enabled: c.vrrp.enabled, groups: c.vrrp.groups.map((g) => ({ name: g.name, virtualRouterId: g.virtualRouterId, interface: g.interface, priority: g.priority, advertIntervalSeconds: g.advertIntervalSeconds, peers: g.peers, preempt: g.preempt })) },
    defaults: { forwarding: c.forwarding, scheduler: c.scheduler },
    api: { listen: `${c.api.listen.host.includes(':') ? `[${c.api.listen.host}]` : c.api.listen.host}:${c.api.listen.port}`, tls: c.api.tls !== undefined },
  };
}

export function registerValidate(program: Command, ctx: CliContext): void {
  program
    .command('validate')
    .description('check a config file; print every problem (exit 1) or a summary of pools and VRRP groups (exit 0)')
    .addOption(outputOption())
    .action(async (o: { output: OutputFormat }) => {
      const path = ctx.configPath();
      const r = await loadConfig(path);
      if (!r.ok) {
        if (o.output === 'table') {
          ctx.err(`${path}: ${r.problems.length} problem${r.problems.length === 1 ? '' : 's'}`);
          for (const p of r.problems) ctx.err(`  ${p}`);
        } else {
          ctx.out(render(o.output, { valid: false, source: path, problems: r.problems }, () => ''));
        }
        ctx.exit(ExitCode.failed);
        return;
      }
      ctx.out(render(o.output, configData(r.config), () => summarizeConfig(r.config)));
    });
}
