import { readFileSync } from 'node:fs';

// dist/src/util/version.js -> package.json three levels up; the same from src/ under tsx.
export const version: string = (() => {
  for (const rel of ['../../../package.json', '../../package.json']) {
    try {
      return (JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { version: string }).version;
    } catch {
      // try the next candidate
    }
  }
  return 'unknown';
})();
