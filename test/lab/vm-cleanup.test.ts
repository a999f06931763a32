// Issue 3: after every lab run no process, mount, /dev/shm file or temp directory of it is left on the host,
// whether the script passed, failed or timed out, and whether the parent exited, was interrupted or killed.
// The runs happen in a child process, so the check also covers what only happens at process exit.
import assert from 'node:assert/strict';
import { labTimeScale } from '../../lab/vm/index.js';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { sweepStale } from '../../lab/vm/cleanup.js';
import { poll } from '../../lab/poll.js';

const CHILD = fileURLToPath(new URL('./vm-cleanup-child.js', import.meta.url));

interface Report {
  case: string;
  id?: string;
  [k: string]: unknown;
}

/** Everything on the host that still mentions a run id. */
function leftovers(id: string): string[] {
  const found: string[] = [];
  for (const d of [join(tmpdir(), `ipvs-lb-lab-${id}`), `/dev/shm/ipvs-lb-lab-${id}`]) if (existsSync(d)) found.push(d);
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.includes(id)) found.push(`process ${pid}: ${cmd.replace(/\0/g, ' ').slice(0, 120)}`);
    } catch {
      // exited meanwhile
    }
  }
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) if (line.includes(id)) found.push(`mount ${line}`);
  return found;
}

function startChild(mode: string, ...extra: string[]): { reports: Report[]; next: () => Promise<Report>; exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>; pid: number } {
  const child = spawn(process.execPath, [CHILD, mode, ...extra], { stdio: ['ignore', 'pipe', 'inherit'] });
  const reports: Report[] = [];
  const waiting: Array<(r: Report) => void> = [];
  createInterface({ input: child.stdout }).on('line', (l) => {
    const r = JSON.parse(l) as Report;
    reports.push(r);
    waiting.shift()?.(r);
  });
  let seen = 0;
  const next = (): Promise<Report> => {
    const have = reports[seen];
    seen++;
    return have ? Promise.resolve(have) : new Promise((resolve) => waiting.push(resolve));
  };
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { reports, next, exit, pid: child.pid as number };
}

async function eventually(what: string, check: () => string[], ms: number): Promise<void> {
  let left: string[] = [];
  await poll(`${what} to be gone`, () => ((left = check()).length === 0 ? true : undefined), { timeoutMs: ms, everyMs: 200, describe: () => `still there after ${ms} ms:\n${left.join('\n')}` });
}

describe('lab: nothing is left on the host', { timeout: (170_000) * labTimeScale() }, () => {
  it('after a passing, a failing, a timed-out, a kept-artifacts and a stepwise run, once the process exits', async () => {
    const keep = mkdtempSync(join(tmpdir(), 'vm-cleanup-test-'));
    try {
      const c = startChild('runs', join(keep, 'artifacts'));
      const { code } = await c.exit;
      assert.equal(code, 0);
      assert.equal(readFileSync(join(keep, 'artifacts', 'kept.txt'), 'utf8'), 'kept\n');
      checkRuns(c.reports);
    } finally {
      rmSync(keep, { recursive: true, force: true });
    }
  });

  function checkRuns(reports: Report[]): void {
    const byCase = new Map(reports.map((r) => [r.case, r]));
    assert.equal(byCase.get('ok')?.exitCode, 0);
    assert.equal(byCase.get('failed')?.exitCode, 3);
    assert.equal(byCase.get('failed')?.output, true);
    assert.equal(byCase.get('timeout')?.name, 'VmTimeoutError');
    assert.match(String(byCase.get('timeout')?.message), /did not finish within 10000 ms; the VM was killed/);
    assert.equal(byCase.get('kept')?.exitCode, 0);
    assert.equal(reports.length, 5);
    for (const r of reports) {
      assert.ok(r.id, `${r.case} reported its run id`);
      assert.deepEqual(leftovers(r.id), [], `${r.case} run left something`);
    }
  }

  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    it(`when the parent gets ${sig} while a guest runs a background process`, async () => {
      const c = startChild('hold');
      const r = await c.next();
      assert.ok(r.id && typeof r.pid === 'number');
      assert.ok(leftovers(r.id).length > 0, 'the running VM is visible before the signal (the check can fail)');
      process.kill(c.pid, sig);
      const { signal } = await c.exit;
      assert.equal(signal, sig, 'the parent still dies of the signal');
      assert.deepEqual(leftovers(r.id), []);
    });
  }

  it('when the parent is SIGKILLed: the guest powers off by itself and the next run sweeps its files', async () => {
    const c = startChild('hold');
    const r = await c.next();
    assert.ok(r.id);
    process.kill(c.pid, 'SIGKILL');
    await c.exit;
    // The guest's agent sees its console close and powers off; no process may outlive the parent for long.
    const id = r.id;
    await eventually('VM processes', () => leftovers(id).filter((l) => l.startsWith('process')), 20_000 * labTimeScale());
    assert.ok(leftovers(id).length > 0, 'its directories are still there before the sweep');
    const swept = sweepStale();
    assert.ok(swept.some((d) => d.endsWith(id)), `sweepStale removed ${swept.join(', ')}`);
    assert.deepEqual(leftovers(id), []);
  });
});
