// Ways to break a config structure one field at a time, shared by the loader's fuzz test and the daemon's
// reload fuzz test.
import fc from 'fast-check';

export type Path = Array<string | number>;

/** Every path to a value inside `v`, parents before children. */
export function configPaths(v: unknown, at: Path = []): Path[] {
  const out: Path[] = [];
  if (Array.isArray(v)) v.forEach((x, i) => out.push([...at, i], ...configPaths(x, [...at, i])));
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) out.push([...at, k], ...configPaths(x, [...at, k]));
  return out;
}

/** `pools[0].addresses`, as the loader names fields. */
export const pathText = (p: Path): string => p.reduce<string>((s, k) => (typeof k === 'number' ? `${s}[${k}]` : s ? `${s}.${k}` : k), '');

export function valueAt(obj: unknown, p: Path): unknown {
  let cur = obj;
  for (const k of p) cur = cur !== null && typeof cur === 'object' ? (cur as Record<string | number, unknown>)[k] : undefined;
  return cur;
}

/** A copy of `obj` with the value at `p` replaced or removed. */
export function withValue(obj: unknown, p: Path, change: { set: unknown } | { remove: true }): unknown {
  const copy = structuredClone(obj) as Record<string | number, unknown>;
  const parent = valueAt(copy, p.slice(0, -1)) as Record<string | number, unknown>;
  const last = p[p.length - 1]!;
  if ('remove' in change) {
    if (Array.isArray(parent)) parent.splice(last as number, 1);
    else delete parent[last];
  } else parent[last] = change.set;
  return copy;
}

/** Values a field might get by mistake: wrong types, near misses, bad addresses, huge and odd strings. */
export const junkValue = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom('', ' ', '0', '-1', '1e309', 'NaN', '192.0.2.1', '192.0.2.0/33', '2001:db8::/129', '198.51.100.9-198.51.100.1', '../etc', 'eth0:1', 'a'.repeat(300), '\u0000', 'ä'),
  fc.array(fc.oneof(fc.string({ maxLength: 8 }), fc.integer()), { maxLength: 4 }),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(fc.string({ maxLength: 8 }), fc.integer()), { maxKeys: 3 }),
);
