import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { summarizeConfig } from '../config/summary.js';
import { ExitCode } from './exit-codes.js';
import type { CliContext } from './context.js';

export function registerValidate(program: Command, ctx: CliContext): void {
  program
    .command('validate')
    .description('check a config file; print every problem (exit 1) or a summary of pools and VRRP groups (exit 0)')
    .action(async () => {
      const path = ctx.configPath();
      const r = await loadConfig(path);
      if (!r.ok) {
        ctx.err(`${path}: ${r.problems.length} problem${r.problems.length === 1 ? '' : 's'}`);
        for (const p of r.problems) ctx.err(`  ${p}`);
        ctx.exit(ExitCode.failed);
        return;
      }
      ctx.out(summarizeConfig(r.config));
    });
}
