// The lab's UML preload (lab/vm/uml-xstate.c), on this host's real kernel: a PTRACE_SETREGSET(NT_X86_XSTATE)
// with a buffer shorter than the host's XSAVE area is what makes UML's init die on AMX hosts. Here the short
// buffer is the legacy area and header only (576 bytes), which every host with AVX refuses the same way, so
// the padding path runs on any such machine, not only on the AMX ones where it matters.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureUmlShim } from '../../lab/vm/uml-shim.js';
import { repoRoot } from '../../lab/vm/paths.js';

describe('lab: the UML XSAVE preload', () => {
  let dir = '';
  let probe = '';
  let shim = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'ipvs-lb-xstate-'));
    probe = join(dir, 'setregset');
    execFileSync('cc', ['-O2', '-o', probe, join(repoRoot, 'test', 'support', 'xstate-setregset.c')]);
    shim = ensureUmlShim();
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  const run = (env: NodeJS.ProcessEnv) => execFileSync(probe, { env: { ...process.env, ...env }, encoding: 'utf8' }).trim();

  it('restores the FPU state from a short buffer that the kernel alone refuses, the missing components in their initial state', (t) => {
    const bare = run({});
    if (bare.startsWith('restored')) {
      t.skip(`this host's XSAVE area is no larger than 576 bytes (no AVX): nothing to pad (${bare})`);
      return;
    }
    assert.equal(bare, 'set-failed errno=14', 'without the preload the kernel refuses the short buffer (EFAULT), as it refuses UML on AMX hosts');
    assert.equal(run({ LD_PRELOAD: shim }), 'restored xmm0=ok avx=init');
  });
});
