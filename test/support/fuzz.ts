// Shared settings of the fuzz tests. Every run uses one seed; fast-check prints it with the shrunk
// counterexample and its path when a property fails ("{ seed: N, path: "..." }"), and
// IPVS_LB_FUZZ_SEED=N replays that run. IPVS_LB_FUZZ_SCALE multiplies the run counts for a longer hunt.
import type { Parameters } from 'fast-check';

const envSeed = process.env.IPVS_LB_FUZZ_SEED;
const scale = Number(process.env.IPVS_LB_FUZZ_SCALE ?? '1');

export const fuzzSeed: number = envSeed !== undefined && Number.isInteger(Number(envSeed)) ? Number(envSeed) : (Date.now() ^ (process.pid << 8)) | 0;

export function fuzzParams<T = unknown>(numRuns: number, extra: Parameters<T> = {}): Parameters<T> {
  return {
    seed: fuzzSeed,
    numRuns: Math.max(1, Math.round(numRuns * (Number.isFinite(scale) && scale > 0 ? scale : 1))),
    includeErrorInReport: true,
    ...extra,
  };
}
