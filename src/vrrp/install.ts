// Puts a rendered keepalived.conf in place: unchanged bytes → nothing happens (no reload); otherwise the text
// goes to a temporary file in the same directory, is validated there by the real keepalived, and replaces
// the old file with rename(2), so keepalived never reads a half-written or unvalidated file.
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { checkKeepalivedConfig, formatCheckMessages, type CheckOptions } from './check.js';

export class KeepalivedConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`keepalived refused the rendered configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'KeepalivedConfigError';
  }
}

export interface InstallResult {
  changed: boolean;
  warnings: string[];
}

async function currentText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export async function installKeepalivedConfig(path: string, text: string, check: CheckOptions): Promise<InstallResult> {
  if ((await currentText(path)) === text) return { changed: false, warnings: [] };
  await mkdir(dirname(path), { recursive: true, mode: 0o750 });
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    await writeFile(tmp, text, { mode: 0o640 });
    const r = await checkKeepalivedConfig(tmp, check);
    // Messages name the final path: that is the file the operator will open.
    if (!r.ok) throw new KeepalivedConfigError(formatCheckMessages(path, r.messages));
    await rename(tmp, path);
    return { changed: true, warnings: formatCheckMessages(path, r.messages) };
  } finally {
    await rm(tmp, { force: true });
  }
}
