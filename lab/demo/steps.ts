// Runs the demo's story as numbered steps and prints it for a person to follow: each step's title, what it
// shows (short excerpts of real command output), what it checks (✓, or ✗ and the step stops), and at the end
// one result line naming the failed step if there was one. Independent of the lab, so it is unit-tested alone.

export interface StepContext {
  /** A line of explanation. */
  say(line: string): void;
  /** An excerpt of command output, under a "$ command" line, cut to maxLines. */
  show(command: string, output: string, maxLines?: number): void;
  /** Passes (✓ what) when ok is true; otherwise the step fails with what and the detail. */
  check(what: string, ok: boolean, detail?: string): void;
  /** A figure the summary repeats (e.g. the failover gap). */
  fact(name: string, value: string): void;
}

export interface Step {
  title: string;
  run(ctx: StepContext): Promise<void>;
}

export interface StoryResult {
  ok: boolean;
  /** 1-based number and title of the step that failed. */
  failed?: { number: number; title: string; message: string };
  passed: number;
  facts: Record<string, string>;
  durationMs: number;
}

export class CheckFailed extends Error {}

const INDENT = '      ';

export async function runStory(steps: readonly Step[], out: (text: string) => void, now: () => number = Date.now): Promise<StoryResult> {
  const facts: Record<string, string> = {};
  const t0 = now();
  let passed = 0;
  const ctx: StepContext = {
    say: (line) => out(`${INDENT}${line}\n`),
    show: (command, output, maxLines = 14) => {
      const lines = output.replace(/\s+$/, '').split('\n');
      const shown = lines.length > maxLines ? [...lines.slice(0, maxLines), `… (${lines.length - maxLines} more lines)`] : lines;
      out(`${INDENT}$ ${command}\n${shown.map((l) => `${INDENT}  ${l}`).join('\n')}\n`);
    },
    check: (what, ok, detail) => {
      if (!ok) throw new CheckFailed(detail ? `${what}: ${detail}` : what);
      out(`${INDENT}✓ ${what}\n`);
    },
    fact: (name, value) => {
      facts[name] = value;
    },
  };
  for (const [i, step] of steps.entries()) {
    const n = i + 1;
    const s0 = now();
    out(`\n[${n}/${steps.length}] ${step.title}\n`);
    try {
      await step.run(ctx);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      const first = message.split('\n')[0] ?? '';
      const rest = message.split('\n').slice(1);
      out(`${INDENT}✗ ${first}\n${rest.map((l) => `${INDENT}  ${l}`).join('\n')}${rest.length ? '\n' : ''}`);
      for (const later of steps.slice(i + 1)) out(`${INDENT}(not run: ${later.title})\n`);
      const durationMs = now() - t0;
      out(`\nResult: FAILED at step ${n} (${step.title}): ${first}\n`);
      return { ok: false, failed: { number: n, title: step.title, message }, passed, facts, durationMs };
    }
    passed++;
    out(`${INDENT}(${((now() - s0) / 1000).toFixed(1)} s)\n`);
  }
  const durationMs = now() - t0;
  const figures = Object.entries(facts).map(([k, v]) => `${k} ${v}`).join(', ');
  out(`\nResult: all ${steps.length} steps passed in ${Math.round(durationMs / 1000)} s${figures ? ` (${figures})` : ''}.\n`);
  return { ok: true, passed, facts, durationMs };
}
