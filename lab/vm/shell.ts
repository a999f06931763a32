// Quoting for the bash scripts the lab writes for the guest. Everything that reaches a guest shell from a
// caller goes through shq(), so a value can never become code.

/** One shell word, single-quoted: safe for any string (embedded quotes are closed, escaped and reopened). */
export function shq(value: string): string {
  if (value.includes('\0')) throw new Error(`shell argument contains a NUL byte: ${JSON.stringify(value)}`);
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** An argv as one shell command line. */
export function shArgv(argv: readonly string[]): string {
  if (argv.length === 0) throw new Error('command: empty argument list');
  return argv.map(shq).join(' ');
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `export K='v'` lines for knobs passed to the guest (kernel arguments cannot carry spaces, a file can). */
export function envFile(vars: Readonly<Record<string, string>>): string {
  return Object.entries(vars)
    .map(([k, v]) => {
      if (!NAME.test(k)) throw new Error(`knobs: invalid variable name ${JSON.stringify(k)} (want ${NAME.source})`);
      return `export ${k}=${shq(v)}\n`;
    })
    .join('');
}

/** Paths the lab puts into kernel arguments and unquoted script positions must be plain. */
export function assertPlainPath(field: string, p: string): string {
  if (!/^\/[A-Za-z0-9._/-]+$/.test(p)) {
    throw new Error(`${field}: ${JSON.stringify(p)} must be an absolute path of letters, digits, '.', '_', '-' and '/'`);
  }
  return p;
}
