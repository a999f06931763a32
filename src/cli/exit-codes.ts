// Documented in docs/cli.md; scripts depend on them, so they never change meaning.
export const ExitCode = {
  ok: 0,
  /** The command ran and found a problem (invalid config, failed check, operation refused). */
  failed: 1,
  /** Wrong usage: unknown command or option, missing argument. */
  usage: 2,
  /** The daemon's API or the ledger could not be reached. */
  unavailable: 3,
} as const;
