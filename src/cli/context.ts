// What every subcommand shares: the chosen config path, output streams and the exit code to return.
import type { Command } from 'commander';
import { DEFAULT_CONFIG_PATH } from '../config/schema.js';

export interface CliContext {
  configPath(): string;
  out(text: string): void;
  err(text: string): void;
  exit(code: number): void;
  readonly exitCode: number;
}

export function createContext(program: Command): CliContext {
  let exitCode = 0;
  return {
    configPath: () => (program.opts().config as string | undefined) ?? DEFAULT_CONFIG_PATH,
    out: (t) => process.stdout.write(`${t}\n`),
    err: (t) => process.stderr.write(`${t}\n`),
    exit: (c) => {
      exitCode = c;
    },
    get exitCode() {
      return exitCode;
    },
  };
}
