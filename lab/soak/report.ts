// The soak's summary for people (and one JSON line for machines). Pure.
import type { SoakResult } from './runner.js';

const count = (r: Partial<Record<string, number>>) => Object.entries(r).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, n]) => `${k} ${n}`).join(', ') || 'none';

/** `[check@host]`, how every soak line names a violated check. */
export const violationLabel = (v: { check: string; host?: string | undefined }): string => `[${v.check}${v.host ? `@${v.host}` : ''}]`;

export function formatReport(r: SoakResult, replay: string): string {
  const lines: string[] = [];
  lines.push('');
  lines.push(`soak ${r.violations.length === 0 && !r.aborted ? 'PASSED' : 'FAILED'}: seed ${r.seed}, ${r.steps} steps in ${(r.durationMs / 1000).toFixed(0)} s`);
  lines.push(`  operations done:   ${r.operations} (${count(r.operationsByKind)})`);
  lines.push(`  faults injected:   ${r.faults} (${count(r.faultsByKind)})`);
  lines.push(`  invariant checks:  ${r.checksPassed} passed over ${r.settles} settles; ${r.violations.length} violated`);
  lines.push(`  settle time:       median ${(r.settleMs.median / 1000).toFixed(1)} s, max ${(r.settleMs.max / 1000).toFixed(1)} s`);
  lines.push(`  guest stalls ≥2 s: ${r.stalls.count}${r.stalls.count ? ` (longest ${(r.stalls.longestMs / 1000).toFixed(1)} s: the machine was overloaded)` : ''}`);
  if (r.aborted) lines.push(`  aborted:           ${r.aborted}`);
  if (r.violations.length > 0) {
    lines.push('');
    lines.push('violations:');
    for (const v of r.violations.slice(0, 20)) {
      lines.push(`- ${violationLabel(v)} step ${v.step}${v.service ? `, Service ${v.service}` : ''}: ${v.message}${v.settled ? '' : ' (the system had not stopped changing)'}`);
      lines.push(`    step ${v.step} operations: ${v.ops.join('; ') || '(none)'}`);
      lines.push(`    fault: ${v.fault ?? '(none)'}${v.faultNote ? ` — ${v.faultNote}` : ''}`);
      for (const d of (v.detail ?? []).slice(0, 25)) lines.push(`      ${d}`);
      if ((v.detail?.length ?? 0) > 25) lines.push(`      … ${v.detail!.length - 25} more`);
    }
    if (r.violations.length > 20) lines.push(`… ${r.violations.length - 20} more violations`);
  }
  if (r.violations.length > 0 || r.aborted) {
    lines.push('');
    lines.push(`replay: ${replay}`);
    if (r.artifactsDir) lines.push(`logs (daemons, keepalived, simulator): ${r.artifactsDir}/logs/`);
  }
  return `${lines.join('\n')}\n`;
}

export function jsonSummary(r: SoakResult): string {
  return JSON.stringify({
    soak: r.violations.length === 0 && !r.aborted ? 'passed' : 'failed',
    seed: r.seed, steps: r.steps, operations: r.operations, operations_by_kind: r.operationsByKind,
    faults: r.faults, faults_by_kind: r.faultsByKind, settles: r.settles, checks_passed: r.checksPassed,
    violations: r.violations.length, settle_median_s: +(r.settleMs.median / 1000).toFixed(1), settle_max_s: +(r.settleMs.max / 1000).toFixed(1),
    guest_stalls: r.stalls.count, longest_stall_s: +(r.stalls.longestMs / 1000).toFixed(1),
    duration_s: Math.round(r.durationMs / 1000), node: process.version,
  });
}
