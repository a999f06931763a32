// Where the lab finds the checkout and keeps its caches. Compiled code runs from dist/lab/vm/, the sources
// from lab/vm/; both are two levels below a directory that holds package.json.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRepoRoot(): string {
  let dir = fileURLToPath(new URL('.', import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'lab'))) return dir.replace(/\/$/, '');
    const up = dirname(dir);
    if (up === dir) throw new Error('lab: cannot find the repository root (package.json next to lab/)');
    dir = up;
  }
}

export const repoRoot = findRepoRoot();
export const labCacheDir = join(repoRoot, '.cache', 'lab');

/** Prefix of every host file or directory a lab run creates, so leftovers are easy to find and sweep. */
export const LAB_PREFIX = 'ipvs-lb-lab-';
