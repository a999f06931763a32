// The record of the virtual services this daemon created, so that it never touches one it did not create
// (the LB host may carry other IPVS services) and still removes its own after a restart.
// Two files: PATH holds the keys as of the last compaction (written atomically), PATH.log the changes since,
// one line each ("+KEY" added, "-KEY" removed), appended: recording one new service among 10,000 is one short
// append, not a rewrite of every key. The log is folded into PATH at start and once it outgrows the table.
// Replaying a log over a PATH that already contains it gives the same set (each key ends as its last line
// says), so a crash between the two steps of a compaction loses nothing.
import { appendFileSync, mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** Compaction happens when the log has more lines than the table has keys plus this. */
const MIN_LOG_LINES = 1024;

function readOptional(path: string, what: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`${path}: cannot read ${what} (${(err as Error).message}); refusing to guess which services are ours`);
  }
}

export class OwnedServices {
  private readonly keys: Set<string>;
  private readonly logPath: string;
  private logLines = 0;
  private dirMade = false;

  constructor(private readonly path: string) {
    this.logPath = `${path}.log`;
    let list: unknown = [];
    const text = readOptional(path, 'the record of owned IPVS services');
    if (text !== undefined) {
      try {
        list = (JSON.parse(text) as { services?: unknown }).services;
      } catch (err) {
        throw new Error(`${path}: cannot read the record of owned IPVS services (${(err as Error).message}); refusing to guess which services are ours`);
      }
    }
    if (!Array.isArray(list) || list.some((k) => typeof k !== 'string')) throw new Error(`${path}: services: must be a list of keys (got ${JSON.stringify(list)})`);
    this.keys = new Set(list as string[]);
    const log = readOptional(this.logPath, 'the log of owned IPVS services');
    if (log === undefined) return;
    const lines = log.split('\n');
    // A last line without its newline is a write the process did not finish: the operation it recorded is
    // not known to have been recorded, as if the crash had come just before it (the same as for PATH alone).
    lines.pop();
    lines.forEach((line, i) => {
      const key = line.slice(1);
      if ((line[0] !== '+' && line[0] !== '-') || key === '') throw new Error(`${this.logPath}: line ${i + 1}: must be +KEY or -KEY (got ${JSON.stringify(line)}); refusing to guess which services are ours`);
      if (line[0] === '+') this.keys.add(key);
      else this.keys.delete(key);
    });
    // Start from an empty log: nothing is appended after a torn line, and the log stays short.
    this.compact();
  }

  has(key: string): boolean {
    return this.keys.has(key);
  }

  get size(): number {
    return this.keys.size;
  }

  /** Applies additions and removals; writes only when something changed. */
  update(added: readonly string[], removed: readonly string[]): void {
    let lines = '';
    let n = 0;
    for (const k of added) {
      if (this.keys.has(k)) continue;
      this.keys.add(k);
      lines += `+${k}\n`;
      n++;
    }
    for (const k of removed) {
      if (!this.keys.delete(k)) continue;
      lines += `-${k}\n`;
      n++;
    }
    if (n === 0) return;
    if (this.logLines + n > MIN_LOG_LINES + this.keys.size) {
      this.compact();
      return;
    }
    this.makeDir();
    appendFileSync(this.logPath, lines, { mode: 0o640 });
    this.logLines += n;
  }

  private makeDir(): void {
    if (!this.dirMade) mkdirSync(dirname(this.path), { recursive: true });
    this.dirMade = true;
  }

  /** Writes every key to PATH atomically, then drops the log. */
  private compact(): void {
    this.makeDir();
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, `${JSON.stringify({ services: [...this.keys].sort() }, null, 1)}\n`, { mode: 0o640 });
    renameSync(tmp, this.path);
    try {
      unlinkSync(this.logPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    this.logLines = 0;
  }
}
