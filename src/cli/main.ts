// The `ipvs-lb` command. Each subcommand lives in its own module and registers itself here.
import { Command, CommanderError, Option } from 'commander';
import { logLevels } from '../config/types.js';
import { version } from '../util/version.js';
import { createContext } from './context.js';
import { ExitCode } from './exit-codes.js';
import { registerDaemon } from './daemon.js';
import { registerDoctor } from './doctor.js';
import { registerOperate } from './operate.js';
import { registerValidate } from './validate.js';
import { registerLab } from './lab.js';
import { registerRenderKeepalived } from './render-keepalived.js';

export function buildProgram(): { program: Command; ctx: ReturnType<typeof createContext> } {
  const program = new Command('ipvs-lb')
    .description('IPVS load balancer for Kubernetes Services of type LoadBalancer, run on dedicated LB hosts')
    .version(version, '-V, --version')
    .option('-c, --config <file>', 'config file (default /etc/ipvs-lb/config.yaml)')
    .addOption(new Option('--log-level <level>', 'log level for the daemon').choices([...logLevels]))
    .exitOverride()
    .showHelpAfterError();
  const ctx = createContext(program);
  registerValidate(program, ctx);
  registerLab(program, ctx);
  registerDaemon(program, ctx);
  registerOperate(program, ctx);
  registerRenderKeepalived(program, ctx);
  registerDoctor(program, ctx);
  return { program, ctx };
}

export async function main(argv: string[]): Promise<number> {
  const { program, ctx } = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end with a "success" CommanderError.
      return err.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    }
    process.stderr.write(`ipvs-lb: ${(err as Error).message}\n`);
    return ExitCode.failed;
  }
  return ctx.exitCode;
}
