// The preload that lets Debian 12's UML run on hosts with a larger XSAVE area (lab/vm/uml-xstate.c says why):
// compiled once per source version with the machine's C compiler into .cache/lab/.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { labCacheDir, repoRoot } from './paths.js';

export const UML_SHIM_SOURCE = join(repoRoot, 'lab', 'vm', 'uml-xstate.c');

/** Path of the compiled preload, building it if needed; throws with the compiler's words when it cannot. */
export function ensureUmlShim(): string {
  const source = readFileSync(UML_SHIM_SOURCE);
  const key = createHash('sha256').update(source).digest('hex').slice(0, 12);
  const lib = join(labCacheDir, `uml-xstate-${key}.so`);
  if (existsSync(lib)) return lib;
  mkdirSync(labCacheDir, { recursive: true });
  const tmp = `${lib}.${process.pid}.tmp`;
  const r = spawnSync('cc', ['-O2', '-Wall', '-shared', '-fPIC', '-o', tmp, UML_SHIM_SOURCE, '-ldl'], { encoding: 'utf8' });
  if (r.status !== 0) {
    rmSync(tmp, { force: true });
    throw new Error(`cc ${UML_SHIM_SOURCE} failed: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim()}`);
  }
  renameSync(tmp, lib);
  for (const f of readdirSync(labCacheDir)) {
    if (f.startsWith('uml-xstate-') && f.endsWith('.so') && join(labCacheDir, f) !== lib) rmSync(join(labCacheDir, f), { force: true });
  }
  return lib;
}
