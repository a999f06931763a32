#!/usr/bin/env node
// The README's test command: typecheck + build, lint, then every test file under dist/test with Node's own
// test runner. Arguments filter test files by substring (`npm test -- ipam lab/`); `--no-lint` skips lint.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const filters = args.filter((a) => !a.startsWith('--'));
const lint = !args.includes('--no-lint');

function step(name, cmd, cmdArgs) {
  process.stdout.write(`\n== ${name}\n`);
  const r = spawnSync(cmd, cmdArgs, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    process.stderr.write(`${name} failed (exit ${r.status ?? r.signal})\n`);
    process.exit(r.status || 1);
  }
}

function findTests(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...findTests(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

step('typecheck and build', join(root, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json']);
if (lint) step('lint', join(root, 'node_modules', '.bin', 'eslint'), ['.']);

const files = findTests(join(root, 'dist', 'test'))
  .map((f) => relative(root, f))
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();
if (files.length === 0) {
  process.stderr.write(`no test files match ${filters.join(' ')}\n`);
  process.exit(1);
}

// Two test files at a time, one per core. Lab files under QEMU go one at a time after the rest: QEMU
// emulates the guest's CPU, one VM keeps a core busy, and two of them beside the other tests starve each
// other's daemons past their waits (measured: a second daemon not ready after 3 minutes). UML runs the
// guest natively and shares the machine well.
const labFiles = files.filter((f) => f.includes(`test${sep}lab${sep}`));
const backend = labFiles.length > 0 ? (await import(join(root, 'dist', 'lab', 'vm', 'backends.js'))).resolveBackend() : undefined;
if (backend === 'qemu' && labFiles.length < files.length) {
  const rest = files.filter((f) => !labFiles.includes(f));
  step(`tests (${rest.length} files)`, process.execPath, ['--test', '--test-concurrency=2', ...rest]);
  step(`lab tests under QEMU, one at a time (${labFiles.length} files)`, process.execPath, ['--test', '--test-concurrency=1', ...labFiles]);
} else {
  step(`tests (${files.length} files)`, process.execPath, ['--test', `--test-concurrency=${backend === 'qemu' ? 1 : 2}`, ...files]);
}
