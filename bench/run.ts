// `npm run bench -- NAME` runs one benchmark and prints one JSON object on its last line;
// `npm run bench` runs all of them and also writes bench/results/latest.json.
// Benchmarks are the files bench/*.bench.ts; each default-exports a Benchmark.
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Benchmark } from './harness.js';

const here = dirname(fileURLToPath(import.meta.url));

async function discover(): Promise<Map<string, Benchmark>> {
  const found = new Map<string, Benchmark>();
  for (const file of readdirSync(here).filter((f) => f.endsWith('.bench.js')).sort()) {
    const mod = (await import(pathToFileURL(join(here, file)).href)) as { default: Benchmark };
    found.set(mod.default.name, mod.default);
  }
  return found;
}

async function runOne(b: Benchmark, quick: boolean): Promise<Record<string, unknown>> {
  const started = Date.now();
  const result = await b.run({ quick });
  return { bench: b.name, ...result, duration_s: Math.round((Date.now() - started) / 100) / 10, node: process.version };
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const names = args.filter((a) => !a.startsWith('--'));
  const all = await discover();
  if (names.length === 0) {
    const results: Record<string, unknown>[] = [];
    for (const b of all.values()) {
      process.stderr.write(`bench: running ${b.name}: ${b.description}\n`);
      const r = await runOne(b, quick);
      results.push(r);
      process.stdout.write(`${JSON.stringify(r)}\n`);
    }
    const out = join(here, '..', '..', 'bench', 'results');
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'latest.json'), `${JSON.stringify({ at: new Date().toISOString(), results }, null, 2)}\n`);
    return 0;
  }
  for (const name of names) {
    const b = all.get(name);
    if (!b) {
      process.stderr.write(`bench: no benchmark named "${name}"; known: ${[...all.keys()].join(', ') || 'none'}\n`);
      return 2;
    }
    process.stdout.write(`${JSON.stringify(await runOne(b, quick))}\n`);
  }
  return 0;
}

process.exitCode = await main();
