// Reads the config file and hands it to the pure parser. YAML syntax errors carry line and column; a file
// that cannot be read says why.
import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { parseConfig, type ParseResult } from './schema.js';

export function parseConfigText(text: string, source: string): ParseResult {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true, strict: true });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      problems: doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        const message = (e.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
        return `${source}${pos ? `:${pos.line}:${pos.col}` : ''}: YAML error: ${message}`;
      }),
    };
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    // Alias expansion beyond the limit (a "billion laughs" file) is refused here, before it costs memory.
    return { ok: false, problems: [`${source}: YAML error: ${(err as Error).message}`] };
  }
  return parseConfig(data, source);
}

export async function loadConfig(path: string): Promise<ParseResult> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (err as Error).message;
    return { ok: false, problems: [`${path}: cannot read the config file: ${why}`] };
  }
  return parseConfigText(text, path);
}

/** Thrown by callers that need a config and got problems; the message lists them all. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
  }
}

export async function loadConfigOrThrow(path: string) {
  const r = await loadConfig(path);
  if (!r.ok) throw new ConfigError(r.problems);
  return r.config;
}
