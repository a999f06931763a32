// What a benchmark module exports. Each benchmark measures its own baseline in the same run and reports
// ratios against it, because absolute numbers move with the machine and the emulator.
export interface BenchResult {
  /** Measured figures; numbers, or small objects of numbers. */
  [figure: string]: unknown;
  baseline: Record<string, unknown>;
}

export interface Benchmark {
  name: string;
  description: string;
  run(opts: { quick: boolean }): Promise<BenchResult>;
}

export function defineBenchmark(b: Benchmark): Benchmark {
  return b;
}

/** Peak resident set size of this process so far, in MiB. */
export const peakRssMb = (): number => Math.round((process.resourceUsage().maxRSS / 1024) * 10) / 10;

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export const median = (values: number[]): number => percentile([...values].sort((a, b) => a - b), 50);
