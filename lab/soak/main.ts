// `npm run soak`: the soak with faults, bounded in time and operation count. Exit 0 only if no invariant
// was violated; 1 on a violation; 2 on bad options or when the harness itself broke.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs, replayCommand, usage } from './options.js';
import { formatReport, jsonSummary } from './report.js';
import { randomSeed } from './rng.js';
import { runSoak } from './runner.js';

async function main(): Promise<number> {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`soak: ${(err as Error).message}\n\n${usage}`);
    return 2;
  }
  if (opts.help) {
    process.stdout.write(usage);
    return 0;
  }
  const seed = opts.seed ?? randomSeed();
  const ownArtifacts = opts.artifactsDir === undefined;
  const artifactsDir = opts.artifactsDir ? resolve(opts.artifactsDir) : mkdtempSync(join(tmpdir(), `ipvs-lb-soak-${seed}-`));
  const t0 = Date.now();
  const stamp = () => `[${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s]`;
  const result = await runSoak({
    seed, durationMs: opts.durationMs, maxOps: opts.maxOps, generator: opts.generator, settleTimeoutMs: opts.settleTimeoutMs,
    quietMs: 2000, keepGoing: opts.keepGoing, backend: opts.backend ?? (process.env.IPVS_LB_LAB_BACKEND === 'qemu' ? 'qemu' : 'uml'),
    artifactsDir, log: (line) => process.stdout.write(`${stamp()} ${line}\n`),
  });
  const failed = result.violations.length > 0 || result.aborted !== undefined;
  if (!failed && ownArtifacts) {
    rmSync(artifactsDir, { recursive: true, force: true });
    result.artifactsDir = undefined;
  }
  process.stdout.write(formatReport(result, replayCommand(opts, seed)));
  process.stdout.write(`${jsonSummary(result)}\n`);
  if (result.aborted && result.violations.every((v) => v.check.startsWith('harness.'))) return 2;
  return failed ? 1 : 0;
}

process.exitCode = await main();
