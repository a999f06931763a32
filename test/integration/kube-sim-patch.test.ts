// The simulator's pure parts: the patch algorithms against the RFCs' own examples and kubectl's directives,
// and the selector grammar. (Pure, but kept next to the simulator's other tests.)
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { jsonPatch, mergePatch, PatchError, strategicMergePatch } from '../../lab/kube-sim/patch.js';
import { matchFields, matchLabels, parseFieldSelector, parseLabelSelector } from '../../lab/kube-sim/selectors.js';
import { humanDuration } from '../../lab/kube-sim/table.js';
import type { Json } from '../../lab/kube-sim/json.js';

describe('merge patch (RFC 7386 appendix A)', () => {
  const cases: [Json, Json, Json][] = [
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [['a', 'b'], ['c', 'd'], ['c', 'd']],
    [{ a: 'b' }, ['c'], ['c']],
    [{ a: 'foo' }, null, null],
    [{ a: 'foo' }, 'bar', 'bar'],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [[1, 2], { a: 'b', c: null }, { a: 'b' }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ];
  for (const [i, [target, patch, result]] of cases.entries()) {
    it(`example ${i + 1}`, () => assert.deepEqual(mergePatch(target, patch), result));
  }
});

describe('JSON patch (RFC 6902)', () => {
  it('applies the appendix examples', () => {
    assert.deepEqual(jsonPatch({ foo: 'bar' }, [{ op: 'add', path: '/baz', value: 'qux' }]), { foo: 'bar', baz: 'qux' });
    assert.deepEqual(jsonPatch({ foo: ['bar', 'baz'] }, [{ op: 'add', path: '/foo/1', value: 'qux' }]), { foo: ['bar', 'qux', 'baz'] });
    assert.deepEqual(jsonPatch({ baz: 'qux', foo: 'bar' }, [{ op: 'remove', path: '/baz' }]), { foo: 'bar' });
    assert.deepEqual(jsonPatch({ foo: { bar: 'baz', waldo: 'fred' }, qux: { corge: 'grault' } }, [{ op: 'move', from: '/foo/waldo', path: '/qux/thud' }]), { foo: { bar: 'baz' }, qux: { corge: 'grault', thud: 'fred' } });
    assert.deepEqual(jsonPatch({ foo: ['bar'] }, [{ op: 'add', path: '/foo/-', value: ['abc', 'def'] }]), { foo: ['bar', ['abc', 'def']] });
    assert.deepEqual(jsonPatch({ '/': 9, '~1': 10 }, [{ op: 'test', path: '/~01', value: 10 }, { op: 'copy', from: '/~1', path: '/x' }]), { '/': 9, '~1': 10, x: 9 });
  });
  it('refuses what cannot apply, as invalid (422) or malformed (400)', () => {
    const kind = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e instanceof PatchError ? e.kind : 'other';
      }
      return 'applied';
    };
    assert.equal(kind(() => jsonPatch({ baz: 'qux' }, [{ op: 'test', path: '/baz', value: 'bar' }])), 'invalid');
    assert.equal(kind(() => jsonPatch({ foo: 'bar' }, [{ op: 'add', path: '/baz/bat', value: 'qux' }])), 'invalid');
    assert.equal(kind(() => jsonPatch({ a: [1] }, [{ op: 'replace', path: '/a/5', value: 2 }])), 'invalid');
    assert.equal(kind(() => jsonPatch({ a: 1 }, [{ op: 'remove', path: '/b' }])), 'invalid');
    assert.equal(kind(() => jsonPatch({ a: 1 }, [{ op: 'add', path: '/b' }])), 'malformed');
    assert.equal(kind(() => jsonPatch({ a: 1 }, { op: 'add' })), 'malformed');
  });
  it('never changes its input, applied or refused', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.array(fc.record({ op: fc.constantFrom('add', 'remove', 'replace', 'test'), path: fc.constantFrom('/a', '/a/0', '/b', '/a/-'), value: fc.jsonValue() })), (doc, ops) => {
        const before = JSON.stringify(doc);
        try {
          jsonPatch(doc as Json, ops);
        } catch (e) {
          assert.ok(e instanceof PatchError);
        }
        assert.equal(JSON.stringify(doc), before);
      }),
    );
  });
});

describe('strategic merge patch', () => {
  const schema = { 'spec.ports': { mergeKey: 'port' }, 'metadata.finalizers': { set: true } };
  const svc: Json = { metadata: { finalizers: ['a'] }, spec: { ports: [{ port: 80, name: 'http', nodePort: 30080 }, { port: 443, name: 'https' }], selector: { app: 'x' } }, status: { loadBalancer: { ingress: [{ ip: '192.0.2.1' }] } } };

  type Svc = { metadata: { finalizers: string[] }; spec: { ports: { port: number }[]; selector: object }; status: { loadBalancer: { ingress: object[] } } };
  const view = (j: Json) => j as unknown as Svc;

  it('merges keyed lists element-wise and replaces lists without a key', () => {
    const r = view(strategicMergePatch(svc, { spec: { ports: [{ port: 80, name: 'web' }, { port: 8080 }] }, status: { loadBalancer: { ingress: [{ ip: '192.0.2.2' }] } } }, schema));
    assert.deepEqual(r.spec.ports, [{ port: 80, name: 'web', nodePort: 30080 }, { port: 443, name: 'https' }, { port: 8080 }]);
    assert.deepEqual(r.status.loadBalancer.ingress, [{ ip: '192.0.2.2' }]);
  });
  it('handles $patch delete/replace, $setElementOrder, $deleteFromPrimitiveList, $retainKeys and null', () => {
    const r = view(strategicMergePatch(
      svc,
      {
        metadata: { finalizers: ['b'], '$deleteFromPrimitiveList/finalizers': ['a'] },
        spec: { '$setElementOrder/ports': [{ port: 443 }, { port: 80 }], ports: [{ port: 80, $patch: 'delete' }], selector: { $patch: 'replace', tier: 'y' } },
      },
      schema,
    ));
    assert.deepEqual(r.metadata.finalizers, ['b']);
    assert.deepEqual(r.spec.ports, [{ port: 443, name: 'https' }]);
    assert.deepEqual(r.spec.selector, { tier: 'y' });
    const kept = strategicMergePatch({ spec: { strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1 } } } }, { spec: { strategy: { $retainKeys: ['type'], type: 'Recreate' } } }, {});
    assert.deepEqual(kept, { spec: { strategy: { type: 'Recreate' } } });
    const ordered = view(strategicMergePatch(svc, { spec: { '$setElementOrder/ports': [{ port: 443 }, { port: 80 }] } }, schema));
    assert.deepEqual(ordered.spec.ports.map((p) => p.port), [443, 80]);
    assert.deepEqual(strategicMergePatch(svc, { spec: null }, schema), { metadata: view(svc).metadata, status: view(svc).status } as unknown as Json);
    assert.throws(() => strategicMergePatch(svc, { spec: { ports: [{ name: 'nokey' }] } }, schema), /merge key: port/);
  });
});

describe('selectors', () => {
  it('parses and matches every label operator', () => {
    const labels = { app: 'web', tier: 'frontend', replicas: '3' };
    const m = (s: string) => {
      const p = parseLabelSelector(s);
      assert.ok(p.ok, `${s}: ${p.ok ? '' : p.error}`);
      return matchLabels(p.value, labels);
    };
    assert.equal(m(''), true);
    assert.equal(m('app=web'), true);
    assert.equal(m('app==web,tier=frontend'), true);
    assert.equal(m('app!=web'), false);
    assert.equal(m('app in (web, api)'), true);
    assert.equal(m('app notin (web)'), false);
    assert.equal(m('missing notin (web)'), true);
    assert.equal(m('tier'), true);
    assert.equal(m('!tier'), false);
    assert.equal(m('example.com/role'), false);
    assert.equal(m('replicas>2,replicas<4'), true);
    for (const bad of ['app=', 'app in (a', 'a b c', '=x', 'in (a)', 'app in ()'].slice(1)) assert.equal(parseLabelSelector(bad).ok, false, bad);
    assert.equal(parseLabelSelector('app=').ok, true, 'an empty value is a valid label value');
  });
  it('accepts only the resource type\'s field labels', () => {
    const p = parseFieldSelector('metadata.name=a,spec.type!=ClusterIP', new Set(['metadata.name', 'spec.type']));
    assert.ok(p.ok);
    const fields: Record<string, string> = { 'metadata.name': 'a', 'spec.type': 'LoadBalancer' };
    assert.equal(matchFields(p.value, (f) => fields[f] ?? ''), true);
    const bad = parseFieldSelector('spec.selector=x', new Set(['metadata.name']));
    assert.deepEqual(bad, { ok: false, error: 'field label not supported: spec.selector' });
  });
});

describe('kubectl AGE column', () => {
  it('formats like apimachinery HumanDuration', () => {
    const s = 1000;
    assert.deepEqual([6 * s, 103 * s, 160 * s, 600 * s, 3 * 3600 * s + 60 * s, 31 * 86400 * s].map(humanDuration), ['6s', '103s', '2m40s', '10m', '3h1m', '31d']);
  });
});
