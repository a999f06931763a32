// The soak's plan generator and its command line: the same seed gives the same plan (that is what makes a
// printed seed a replay), every operation and fault kind shows up, the model never references a Service
// that is gone, and the requests it makes are ones the API accepts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  A, applyOp, defaultGeneratorOptions, FAULT_KINDS, initialGenState, nextStep, OP_KINDS,
  type GeneratorOptions, type GenState, type Step,
} from '../../lab/soak/generator.js';
import { parseArgs, parseDuration, replayCommand } from '../../lab/soak/options.js';
import { opRequest, parseRequestOutput, requestScript, serviceManifest } from '../../lab/soak/requests.js';
import { Rng } from '../../lab/soak/rng.js';
import { NODE_NAMES } from '../../lab/soak/world.js';

function plan(seed: number, steps: number, o: GeneratorOptions = defaultGeneratorOptions): { steps: Step[]; states: GenState[] } {
  const rng = new Rng(seed);
  let s = initialGenState();
  const out: Step[] = [];
  const states: GenState[] = [];
  for (let i = 0; i < steps; i++) {
    const n = nextStep(s, rng, o);
    out.push(n.step);
    states.push(n.state);
    s = n.state;
  }
  return { steps: out, states };
}

describe('soak rng', () => {
  it('is a pure function of its seed and spreads its values', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const xs = Array.from({ length: 1000 }, () => a.next());
    assert.deepEqual(xs, Array.from({ length: 1000 }, () => b.next()));
    assert.notDeepEqual(xs.slice(0, 10), Array.from({ length: 10 }, (() => { const c = new Rng(43); return () => c.next(); })()));
    const r = new Rng(7);
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 4000; i++) counts[r.int(0, 3)]!++;
    for (const c of counts) assert.ok(c > 850 && c < 1150, `uneven: ${counts.join(',')}`);
  });

  it('refuses seeds it could not print back', () => {
    assert.throws(() => new Rng(-1), /seed: must be an integer from 0 to 4294967295 \(got -1\)/);
    assert.throws(() => new Rng(1.5), /got 1.5/);
    assert.throws(() => new Rng(2 ** 32), /got 4294967296/);
  });
});

describe('soak generator', () => {
  it('gives the same plan for the same seed and another for another seed', () => {
    assert.deepEqual(plan(12345, 200).steps, plan(12345, 200).steps);
    assert.notDeepEqual(plan(12345, 30).steps, plan(12346, 30).steps);
  });

  it('uses every operation kind and every fault kind, one fault of each kind per round', () => {
    const { steps } = plan(1, 400);
    const ops = new Set(steps.flatMap((s) => s.ops.map((o) => o.kind)));
    assert.deepEqual([...ops].sort(), [...OP_KINDS].sort());
    const faults = new Set(steps.flatMap((s) => (s.fault ? [s.fault.kind] : [])));
    assert.deepEqual([...faults].sort(), [...FAULT_KINDS].sort());
    // With a fault in every step, the first round covers every kind (node-notready only when a node is Ready).
    const every = plan(9, FAULT_KINDS.length, { ...defaultGeneratorOptions, faultRate: 1 }).steps;
    assert.deepEqual(every.map((s) => s.fault!.kind).sort(), [...FAULT_KINDS].sort());
  });

  it('never touches a Service it has not made or has deleted, and stays within its bounds', () => {
    const o = { ...defaultGeneratorOptions, maxServices: 6, faultRate: 1 };
    const rng = new Rng(99);
    let s = initialGenState();
    for (let i = 0; i < 2000; i++) {
      const before = s;
      const { step, state } = nextStep(s, rng, o);
      // Replaying the operations on the previous model must work and give the new model.
      let services = before.services;
      for (const op of step.ops) services = applyOp(services, op);
      assert.deepEqual(services, state.services);
      assert.ok(Object.keys(state.services).length <= 6);
      assert.ok(step.ops.length >= o.minOpsPerStep && step.ops.length <= o.maxOpsPerStep);
      // At least one node stays Ready: a cluster with none serves nothing and proves little.
      assert.ok(Object.keys(state.notReady).length <= NODE_NAMES.length - 1);
      for (const n of step.nodesReady) assert.ok(before.notReady[n] !== undefined, `${n} was not NotReady`);
      s = state;
    }
  });

  it('cuts the last step to the operations left', () => {
    const { step } = nextStep(initialGenState(), new Rng(3), { ...defaultGeneratorOptions, minOpsPerStep: 4, maxOpsPerStep: 4 }, 2);
    assert.equal(step.ops.length, 2);
  });

  it('makes requests the API accepts: DNS-label port names, unique, and only IPs in spec.loadBalancerIP', () => {
    const { steps } = plan(5, 500);
    for (const op of steps.flatMap((s) => s.ops)) {
      const r = opRequest(op);
      assert.match(r.path, /^\/api\/v1\/namespaces\/default\/services(\/s-\d+)?$/);
      if (op.kind === 'create') {
        const ports = op.service.ports;
        assert.equal(new Set(ports.map((p) => p.name)).size, ports.length);
        for (const p of ports) assert.match(p.name, /^[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$/);
        if (op.service.loadBalancerIP) assert.match(op.service.loadBalancerIP, /^\d+\.\d+\.\d+\.\d+$/);
      }
      if (op.kind === 'request-address' && op.via === 'field' && op.address) assert.match(op.address, /^192\.0\.2\.\d+$/);
    }
  });

  it('turns an address request into one merge patch that sets one way and clears the other', () => {
    const svc = { name: 's-1', ports: [{ name: 'tcp-80', port: 80, protocol: 'TCP' as const }], annotations: { [A.ips]: '192.0.2.3' } };
    const viaField = opRequest({ kind: 'request-address', name: 's-1', via: 'field', address: '192.0.2.4' });
    assert.equal(viaField.contentType, 'application/merge-patch+json');
    assert.deepEqual(viaField.body, { metadata: { annotations: { [A.ips]: null } }, spec: { loadBalancerIP: '192.0.2.4' } });
    const after = applyOp({ 's-1': svc }, { kind: 'request-address', name: 's-1', via: 'field', address: '192.0.2.4' });
    assert.deepEqual(after['s-1'], { name: 's-1', ports: svc.ports, annotations: {}, loadBalancerIP: '192.0.2.4' });
    assert.deepEqual((serviceManifest(after['s-1']!).spec as { loadBalancerIP?: string }).loadBalancerIP, '192.0.2.4');
  });

  it('sends bodies as files and retries only what a fault explains', () => {
    const script = requestScript([opRequest({ kind: 'delete', name: 's-2' })], { bodyFile: (i) => `/run/x/${i}.json`, url: 'https://127.0.0.1:6443', caFile: '/tmp/kube/ca.crt', tokenFile: '/run/x/token', retryForMs: 1000 });
    assert.match(script, /send 0 DELETE \/api\/v1\/namespaces\/default\/services\/s-2 application\/json ''/);
    assert.match(script, /case "\$code" in 000\|429\|5\?\?\) ;;/);
    assert.throws(() => requestScript([{ method: 'DELETE', path: '/x;rm -rf /', body: undefined, contentType: 'a' }], { bodyFile: () => '', url: '', caFile: '', tokenFile: '', retryForMs: 1 }), /unexpected characters/);
    assert.deepEqual(parseRequestOutput('OP 0 201\nnoise\nOP 2 409\n', 3), [201, 0, 409]);
  });
});

describe('soak options', () => {
  it('parses durations and refuses nonsense with the option and the value', () => {
    assert.equal(parseDuration('90s', 'x'), 90_000);
    assert.equal(parseDuration('10m', 'x'), 600_000);
    assert.equal(parseDuration('1.5h', 'x'), 5_400_000);
    assert.equal(parseDuration('45', 'x'), 45_000);
    assert.throws(() => parseDuration('soon', '--duration'), /--duration: must be a duration such as 90s, 10m or 1h \(got "soon"\)/);
    assert.throws(() => parseDuration('0s', '--duration'), /must be positive/);
    assert.throws(() => parseArgs(['--ops', '0', '--faults', 'meteor', '--bogus']), (err: Error) =>
      /--ops: must be an integer from 1 to 10000000 \(got "0"\)/.test(err.message) && /--faults: unknown kind\(s\) meteor/.test(err.message) && /unknown option "--bogus"/.test(err.message));
    assert.throws(() => parseArgs(['--ops-per-step', '5-2']), /maxOpsPerStep/);
  });

  it('prints a replay command that parses back to the same plan', () => {
    const o = parseArgs(['--seed', '77', '--ops=40', '--duration', '5m', '--max-services', '8', '--ops-per-step', '2-3', '--fault-rate', '1', '--faults', 'daemon-kill,watch-drop']);
    const cmd = replayCommand(o, 77);
    assert.equal(cmd, 'npm run soak -- --seed 77 --ops 40 --duration 5m --max-services 8 --ops-per-step 2-3 --fault-rate 1 --faults daemon-kill,watch-drop');
    const back = parseArgs(cmd.split(' ').slice(4));
    assert.deepEqual([back.seed, back.maxOps, back.durationMs, back.generator], [77, 40, 300_000, o.generator]);
    assert.deepEqual(parseArgs(['--faults', 'none']).generator.faultKinds, []);
  });
});
