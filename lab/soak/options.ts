// `npm run soak -- [options]`: parsing and the replay command line (pure). Every bad value is refused with
// the option's name and the value.
import { checkGeneratorOptions, defaultGeneratorOptions, FAULT_KINDS, type FaultKind, type GeneratorOptions } from './generator.js';

export interface CliOptions {
  seed: number | undefined;
  durationMs: number;
  maxOps: number;
  generator: GeneratorOptions;
  settleTimeoutMs: number;
  keepGoing: boolean;
  backend: 'uml' | 'qemu' | undefined;
  artifactsDir: string | undefined;
  help: boolean;
}

export const defaults: CliOptions = {
  seed: undefined,
  durationMs: 10 * 60_000,
  maxOps: 1000,
  generator: defaultGeneratorOptions,
  settleTimeoutMs: 180_000,
  keepGoing: false,
  backend: undefined,
  artifactsDir: undefined,
  help: false,
};

export const usage = `npm run soak -- [options]

Random Service churn against the real daemons in the lab while faults are injected; after every settle
the invariants are checked. Exit 0 only if no invariant was violated. See docs/soak.md.

  --seed N               seed of the plan (0-4294967295); a run prints its seed, give it to replay (default: random)
  --duration D           stop starting steps after D: 90s, 10m, 1h, or seconds (default 10m)
  --ops N                stop after N Service operations (default 1000)
  --max-services N       at most N Services at a time (default ${defaultGeneratorOptions.maxServices})
  --ops-per-step A-B     operations per step (default ${defaultGeneratorOptions.minOpsPerStep}-${defaultGeneratorOptions.maxOpsPerStep})
  --fault-rate P         probability that a step injects a fault, 0-1 (default ${defaultGeneratorOptions.faultRate})
  --faults K,K,...       fault kinds to use (default all: ${FAULT_KINDS.join(', ')}); "none" for churn only
  --settle-timeout D     how long a step may take to settle (default 180s)
  --keep-going           do not stop at the first violation
  --backend uml|qemu     lab backend (default: IPVS_LB_LAB_BACKEND or uml)
  --artifacts DIR        keep the VM's logs there (default: a temp dir, kept only when something failed)
  -h, --help             this text
`;

export function parseDuration(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new Error(`${what}: must be a duration such as 90s, 10m or 1h (got ${JSON.stringify(text)})`);
  const n = Number(m[1]);
  const ms = n * ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const)[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  if (!Number.isFinite(ms) || ms <= 0) throw new Error(`${what}: must be positive (got ${JSON.stringify(text)})`);
  return Math.round(ms);
}

function integer(text: string | undefined, what: string, min: number, max: number): number {
  const n = Number(text);
  if (text === undefined || !/^\d+$/.test(text) || n < min || n > max) throw new Error(`${what}: must be an integer from ${min} to ${max} (got ${JSON.stringify(text ?? '')})`);
  return n;
}

export function parseArgs(argv: readonly string[]): CliOptions {
  const o: CliOptions = { ...defaults, generator: { ...defaults.generator } };
  const problems: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string => {
      if (inline !== undefined) return inline;
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag}: needs a value`);
      return v;
    };
    try {
      switch (flag) {
        case '--seed': o.seed = integer(value(), '--seed', 0, 0xffffffff); break;
        case '--duration': o.durationMs = parseDuration(value(), '--duration'); break;
        case '--ops': o.maxOps = integer(value(), '--ops', 1, 10_000_000); break;
        case '--max-services': o.generator.maxServices = integer(value(), '--max-services', 1, 200); break;
        case '--ops-per-step': {
          const v = value();
          const m = /^(\d+)-(\d+)$/.exec(v) ?? /^(\d+)$/.exec(v);
          if (!m) throw new Error(`--ops-per-step: must be A-B or N (got ${JSON.stringify(v)})`);
          o.generator.minOpsPerStep = Number(m[1]);
          o.generator.maxOpsPerStep = Number(m[2] ?? m[1]);
          break;
        }
        case '--fault-rate': {
          const v = value();
          const p = Number(v);
          if (!/^\d*\.?\d+$/.test(v) || p < 0 || p > 1) throw new Error(`--fault-rate: must be a number from 0 to 1 (got ${JSON.stringify(v)})`);
          o.generator.faultRate = p;
          break;
        }
        case '--faults': {
          const v = value();
          const kinds = v === 'none' ? [] : v.split(',').map((s) => s.trim());
          const unknown = kinds.filter((k) => !FAULT_KINDS.includes(k as FaultKind));
          if (unknown.length > 0 || (kinds.length === 0 && v !== 'none')) throw new Error(`--faults: unknown kind(s) ${unknown.join(', ') || JSON.stringify(v)} (known: ${FAULT_KINDS.join(', ')}, or none)`);
          o.generator.faultKinds = kinds as FaultKind[];
          break;
        }
        case '--settle-timeout': o.settleTimeoutMs = parseDuration(value(), '--settle-timeout'); break;
        case '--keep-going': o.keepGoing = true; break;
        case '--backend': {
          const v = value();
          if (v !== 'uml' && v !== 'qemu') throw new Error(`--backend: must be uml or qemu (got ${JSON.stringify(v)})`);
          o.backend = v;
          break;
        }
        case '--artifacts': o.artifactsDir = value(); break;
        case '-h': case '--help': o.help = true; break;
        default: throw new Error(`unknown option ${JSON.stringify(arg)} (see --help)`);
      }
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  problems.push(...checkGeneratorOptions(o.generator).map((p) => `generator ${p}`));
  if (problems.length > 0) throw new Error(problems.join('\n'));
  return o;
}

const seconds = (ms: number) => (ms % 60_000 === 0 ? `${ms / 60_000}m` : `${Math.round(ms / 1000)}s`);

/** The command line that replays a run: the same seed and every option that shapes the plan. */
export function replayCommand(o: CliOptions, seed: number): string {
  const g = o.generator;
  const d = defaults.generator;
  const parts = ['npm run soak --', `--seed ${seed}`, `--ops ${o.maxOps}`, `--duration ${seconds(o.durationMs)}`];
  if (g.maxServices !== d.maxServices) parts.push(`--max-services ${g.maxServices}`);
  if (g.minOpsPerStep !== d.minOpsPerStep || g.maxOpsPerStep !== d.maxOpsPerStep) parts.push(`--ops-per-step ${g.minOpsPerStep}-${g.maxOpsPerStep}`);
  if (g.faultRate !== d.faultRate) parts.push(`--fault-rate ${g.faultRate}`);
  if (g.faultKinds.join(',') !== d.faultKinds.join(',')) parts.push(`--faults ${g.faultKinds.length ? g.faultKinds.join(',') : 'none'}`);
  if (o.backend) parts.push(`--backend ${o.backend}`);
  return parts.join(' ');
}
