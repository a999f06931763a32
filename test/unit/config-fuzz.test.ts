// Bad input to the config loader: random and mutated YAML text, random structures, and the shipped example
// with one field changed, deleted or added. The loader never throws, never hangs, and every problem reads
// `path: what is wrong`; a broken field is named by its path.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { parse } from 'yaml';
import { parseConfigText } from '../../src/config/load.js';
import { parseConfig, type ParseResult } from '../../src/config/schema.js';
import { configPaths, junkValue, pathText, withValue } from '../support/config-mutations.js';
import { fuzzParams } from '../support/fuzz.js';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');
const exampleText = readFileSync(join(root, 'examples', 'config.yaml'), 'utf8');
const example = parse(exampleText) as Record<string, unknown>;

/** `pools[0].addresses[1]: must be ...` or `file:3:5: YAML error: ...`: a location, then the reason. */
const Q = '"(?:[^"\\\\]|\\\\.)*"';
const PROBLEM = new RegExp(`^((\\(top level\\)|[\\w-]+|\\[${Q}\\])(\\[\\d+\\]|\\.[\\w-]+|\\[${Q}\\])*: \\S|\\S+?(:\\d+:\\d+)?: YAML error: )`);

function wellFormed(r: ParseResult, what: string): ParseResult {
  if (r.ok) return r;
  assert.ok(r.problems.length > 0, `${what}: refused without a reason`);
  for (const p of r.problems) {
    assert.equal(typeof p, 'string');
    assert.match(p, PROBLEM, `${what}: problem without a location: ${p}`);
    assert.ok(p.length < 2000, `${what}: a problem of ${p.length} characters`);
  }
  return r;
}

const allPaths = configPaths(example);
const text = pathText;
const junk = junkValue;

describe('config loader under bad input', { timeout: 120_000 }, () => {
  it('the shipped example loads', () => {
    assert.equal(parseConfigText(exampleText, 'example.yaml').ok, true);
  });

  it('random text, random bytes and random structures are refused with located problems, never thrown', () => {
    fc.assert(fc.property(fc.oneof(fc.string({ maxLength: 400 }), fc.string({ unit: 'binary', maxLength: 400 })), (t) => {
      wellFormed(parseConfigText(t, 'f.yaml'), 'text');
    }), fuzzParams(1500));
    fc.assert(fc.property(fc.anything({ maxDepth: 4 }), (v) => {
      wellFormed(parseConfig(v, 'f.yaml'), 'structure');
    }), fuzzParams(1500));
  });

  it('every truncation of the example is refused or accepted cleanly', () => {
    for (let n = 0; n < exampleText.length; n += 3) wellFormed(parseConfigText(exampleText.slice(0, n), 'cut.yaml'), `cut at ${n}`);
  });

  it('line edits of the example (delete, duplicate, re-indent, swap, insert bytes) never escape as exceptions', () => {
    const lines = exampleText.split('\n');
    const edit = fc.oneof(
      fc.record({ op: fc.constant('delete' as const), at: fc.nat(lines.length - 1) }),
      fc.record({ op: fc.constant('dup' as const), at: fc.nat(lines.length - 1) }),
      fc.record({ op: fc.constant('indent' as const), at: fc.nat(lines.length - 1), by: fc.integer({ min: -4, max: 4 }) }),
      fc.record({ op: fc.constant('swap' as const), at: fc.nat(lines.length - 1), with: fc.nat(lines.length - 1) }),
      fc.record({ op: fc.constant('insert' as const), at: fc.nat(exampleText.length), bytes: fc.string({ unit: 'binary', minLength: 1, maxLength: 6 }) }),
    );
    fc.assert(fc.property(fc.array(edit, { minLength: 1, maxLength: 4 }), (edits) => {
      let l = [...lines];
      for (const e of edits) {
        const i = Math.min(e.at, l.length - 1);
        if (e.op === 'delete') l.splice(i, 1);
        else if (e.op === 'dup') l.splice(i, 0, l[i]!);
        else if (e.op === 'indent') l[i] = e.by > 0 ? ' '.repeat(e.by) + l[i] : l[i]!.slice(-e.by);
        else if (e.op === 'swap') [l[i], l[Math.min(e.with, l.length - 1)]] = [l[Math.min(e.with, l.length - 1)]!, l[i]!];
        else {
          const t = l.join('\n');
          l = (t.slice(0, e.at) + e.bytes + t.slice(e.at)).split('\n');
        }
      }
      wellFormed(parseConfigText(l.join('\n'), 'edited.yaml'), 'edited');
    }), fuzzParams(800));
  });

  it('one field of the example replaced by junk: refused naming that field (or accepted when the junk is valid)', () => {
    fc.assert(fc.property(fc.constantFrom(...allPaths), junk, (p, value) => {
      const r = wellFormed(parseConfig(withValue(example, p, { set: value }), 'x.yaml'), `${text(p)} = ${JSON.stringify(value)}`);
      if (r.ok) return;
      const at = text(p);
      // The field itself, a field inside it, or the section that holds it; or a cross-reference that quotes it.
      const named = r.problems.some((m) => {
        const where = m.slice(0, m.indexOf(': '));
        return where === at || where.startsWith(`${at}.`) || where.startsWith(`${at}[`) || at.startsWith(`${where}.`) || at.startsWith(`${where}[`) || m.includes(at);
      });
      assert.ok(named, `${at} = ${JSON.stringify(value)} refused without naming it:\n  ${r.problems.join('\n  ')}`);
    }), fuzzParams(3000));
  });

  it('a field deleted or an unknown field added: refused naming it, or accepted with its default', () => {
    fc.assert(fc.property(fc.constantFrom(...allPaths), (p) => {
      wellFormed(parseConfig(withValue(example, p, { remove: true }), 'x.yaml'), `without ${text(p)}`);
    }), fuzzParams(500));
    const mappings = [[], ...allPaths.filter((p) => {
      let v: unknown = example;
      for (const k of p) v = (v as Record<string | number, unknown>)[k];
      return v !== null && typeof v === 'object' && !Array.isArray(v);
    })];
    fc.assert(fc.property(fc.constantFrom(...mappings), fc.stringMatching(/^[a-z][A-Za-z]{2,12}$/), (p, key) => {
      let target: unknown = example;
      for (const k of p) target = (target as Record<string | number, unknown>)[k];
      fc.pre(!(key in (target as object)));
      const r = parseConfig(withValue(example, [...p, key], { set: 1 }), 'x.yaml');
      assert.equal(r.ok, false, `unknown field ${text([...p, key])} accepted`);
      assert.ok(!r.ok && r.problems.some((m) => m.startsWith(`${text([...p, key])}: `)), `unknown ${text([...p, key])} not named: ${!r.ok && r.problems.join('; ')}`);
    }), fuzzParams(500));
  });

  it('YAML bombs and deep nesting end quickly with an error', () => {
    const bomb = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]', ...Array.from({ length: 9 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10).fill(`*${String.fromCharCode(97 + i)}`).join(',')}]`)].join('\n');
    const b = parseConfigText(bomb, 'bomb.yaml');
    assert.equal(b.ok, false);
    assert.ok(!b.ok && b.problems.some((p) => /alias/i.test(p)), !b.ok ? b.problems.join('; ') : '');
    const deep = `${'['.repeat(5000)}${']'.repeat(5000)}`;
    wellFormed(parseConfigText(deep, 'deep.yaml'), 'deep');
    wellFormed(parseConfigText(`pools:\n${'  - name: p\n    addresses: [192.0.2.0/24]\n'.repeat(20_000)}`, 'many.yaml'), 'many pools');
  });
});
