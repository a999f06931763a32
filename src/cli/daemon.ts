import { Option, type Command } from 'commander';
import { logLevels, type LogLevel } from '../config/types.js';
import type { CliContext } from './context.js';

export function registerDaemon(program: Command, ctx: CliContext): void {
  program
    .command('daemon')
    .description('run the load balancer daemon (under systemd: see systemd/ipvs-lb.service)')
    .addOption(new Option('--no-kernel', 'allocate and report only; program no IPVS service and bind no VIP'))
    .action(async (opts: { kernel: boolean }) => {
      const { runDaemon } = await import('../daemon.js');
      const level = program.opts().logLevel as LogLevel | undefined;
      if (level && !logLevels.includes(level)) throw new Error(`--log-level: unknown level ${level}`);
      const makeDataPlane = opts.kernel ? (await import('../daemon/kernel.js')).makeKernelDataPlane : undefined;
      ctx.exit(await runDaemon({ configPath: ctx.configPath(), logLevel: level, makeDataPlane }));
    });
}
