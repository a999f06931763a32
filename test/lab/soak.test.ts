// A short soak in the lab (what `npm run soak` does, with a small fixed plan): two LB hosts with the real
// daemon and keepalived, the API simulator, six steps of Service churn with one fault each (every kind
// once), and every invariant checked after each settle. Then the checker is shown a violation planted in the
// real system (a VIP bound by hand on the backup of its group), so a checker that sees nothing cannot pass.
import assert from 'node:assert/strict';
import { labTimeScale } from '../../lab/vm/index.js';
import { describe, it } from 'node:test';
import { groupOf } from '../../lab/soak/expected.js';
import { defaultGeneratorOptions, FAULT_KINDS } from '../../lab/soak/generator.js';
import { checkInvariants } from '../../lab/soak/invariants.js';
import { defaults, replayCommand } from '../../lab/soak/options.js';
import { formatReport, violationLabel } from '../../lab/soak/report.js';
import { runSoak } from '../../lab/soak/runner.js';
import { GROUPS, HOSTS, markerOf } from '../../lab/soak/world.js';

const SEED = 20260101;

describe('lab: a short soak with every fault', { timeout: (1_800_000) * labTimeScale() }, () => {
  it('churns Services through six steps, one fault of each kind, without breaking an invariant, and catches a VIP planted on a backup', async () => {
    const generator = { ...defaultGeneratorOptions, minOpsPerStep: 2, maxOpsPerStep: 2, faultRate: 1 };
    let planted: string[] | undefined;
    const lines: string[] = [];
    const result = await runSoak({
      seed: SEED, durationMs: 25 * 60_000, maxOps: 12, generator, settleTimeoutMs: 240_000, quietMs: 2000, keepGoing: false,
      backend: 'uml', log: (l) => lines.push(l),
      beforeStop: async (lab, plan) => {
        const before = await lab.observe();
        const vip = before.services.ok ? before.services.value.flatMap((s) => s.status?.loadBalancer?.ingress ?? []).map((i) => i.ip!).find(Boolean) : undefined;
        assert.ok(vip, 'the soak left at least one Service with an address');
        const group = GROUPS.find((g) => g.name === groupOf(vip))!;
        const backup = before.hosts.find((h) => h.addresses.ok && !h.addresses.value.includes(markerOf(group)))!.host;
        // Not the daemon's address (its ownership record does not know it), so it stays until removed.
        await lab.vm.run(['ip', 'addr', 'add', `${vip}/32`, 'dev', 'eth0'], { ns: backup });
        const after = await lab.observe();
        const r = checkInvariants(after, { plan, logErrors: [], explained: () => true, unexpectedExits: [] });
        planted = r.violations.map((v) => `${v.check}@${v.host ?? ''}: ${v.detail?.join(' ') ?? v.message}`);
        await lab.vm.run(['ip', 'addr', 'del', `${vip}/32`, 'dev', 'eth0'], { ns: backup });
        assert.ok(HOSTS.some((h) => h.name === backup));
      },
    });
    // The violations come first: a CI log keeps only the start of a long failure message.
    const headline = result.violations.map((v) => `VIOLATED ${violationLabel(v)} step ${v.step}: ${v.message}${v.detail?.length ? ` | ${v.detail.slice(0, 5).join(' | ')}` : ''}`);
    const report = `${[...headline, ...(result.aborted ? [`ABORTED: ${result.aborted.split('\n')[0]}`] : []), ...lines].join('\n')}\n${formatReport(result, replayCommand({ ...defaults, seed: SEED, maxOps: 12, generator }, SEED))}`;
    assert.equal(result.aborted, undefined, report);
    assert.deepEqual(result.violations, [], report);
    assert.equal(result.operations, 12, report);
    assert.deepEqual(Object.keys(result.faultsByKind).sort(), [...FAULT_KINDS].sort(), `every fault kind once:\n${report}`);
    assert.ok(result.checksPassed >= 24 * (result.steps + 1), report);
    assert.equal(planted?.length, 1, `planted VIP: ${JSON.stringify(planted)}`);
    assert.match(planted![0]!, /^vip\.bound-only-on-master@lb\d: .* is bound but this host is not master of/);
  });
});
