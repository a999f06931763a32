// Every way the ledger can fail to open or write, as one error type with a stable code and the exit code the
// daemon and CLI end with. A ledger is never recreated behind the operator's back: losing it would hand the
// same address to two Services after the next restart, so a bad file stops the daemon and says why.
export const LedgerErrorCodes = {
  /** Another process (a second daemon) holds the ledger. */
  LOCKED: 75, // EX_TEMPFAIL: retry once the other daemon is gone
  /** The file is damaged (SQLite integrity check failed or SQLITE_CORRUPT). */
  CORRUPT: 65, // EX_DATAERR
  /** The file is not an SQLite database at all. */
  NOT_A_DATABASE: 65,
  /** An SQLite database, but not an ipvs-lb ledger (another application's file). */
  NOT_A_LEDGER: 65,
  /** Written by a newer ipvs-lb whose schema this version does not know. */
  SCHEMA_TOO_NEW: 78, // EX_CONFIG: run the newer version or restore a backup
  /** The file or its directory cannot be written (permissions, read-only mount, full disk). */
  UNWRITABLE: 73, // EX_CANTCREAT
  /** The path cannot be opened at all (missing directory, a directory instead of a file). */
  CANNOT_OPEN: 66, // EX_NOINPUT
} as const;
export type LedgerErrorCode = keyof typeof LedgerErrorCodes;

export class LedgerError extends Error {
  readonly exitCode: number;
  constructor(
    readonly code: LedgerErrorCode,
    readonly path: string,
    detail: string,
    readonly sqliteCode?: string,
  ) {
    super(`ledger ${path}: ${detail} [${code}${sqliteCode ? `, ${sqliteCode}` : ''}]`);
    this.name = 'LedgerError';
    this.exitCode = LedgerErrorCodes[code];
  }
}

/** Maps an SQLite or file-system error to a LedgerError; other errors pass through. */
export function ledgerErrorFrom(err: unknown, path: string, doing: string): unknown {
  if (err instanceof LedgerError) return err;
  const code = (err as { code?: string }).code ?? '';
  const msg = (err as Error).message ?? String(err);
  if (code === 'SQLITE_BUSY' || code.startsWith('SQLITE_BUSY_') || code === 'SQLITE_LOCKED') {
    return new LedgerError('LOCKED', path, `${doing}: held by another process (is a second ipvs-lb daemon running on this host?)`, code);
  }
  if (code === 'SQLITE_NOTADB') return new LedgerError('NOT_A_DATABASE', path, `${doing}: the file is not an SQLite database`, code);
  if (code === 'SQLITE_CORRUPT' || code.startsWith('SQLITE_CORRUPT_')) {
    return new LedgerError('CORRUPT', path, `${doing}: the database is damaged (${msg}); restore a backup or move the file away deliberately`, code);
  }
  if (code === 'SQLITE_READONLY' || code.startsWith('SQLITE_READONLY_') || code === 'SQLITE_FULL' || code === 'SQLITE_PERM' || code.startsWith('SQLITE_IOERR')) {
    return new LedgerError('UNWRITABLE', path, `${doing}: cannot write (${msg}); check that the daemon's user can write the file and its directory, and that the disk is not full or mounted read-only`, code);
  }
  if (code === 'SQLITE_CANTOPEN' || code.startsWith('SQLITE_CANTOPEN_')) {
    return new LedgerError('CANNOT_OPEN', path, `${doing}: cannot open the file (${msg}); is the directory missing or not writable, or is the path a directory?`, code);
  }
  return err;
}
