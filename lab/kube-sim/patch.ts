// The three PATCH flavours kube-apiserver accepts, as pure functions on JSON:
// - JSON merge patch (RFC 7386),
// - JSON patch (RFC 6902, including `test`),
// - strategic merge patch, with the merge keys of the types ipvs-lb and kubectl touch and the directives
//   kubectl 1.20's client-side apply sends ($patch, $retainKeys, $setElementOrder, $deleteFromPrimitiveList).
import { clone, deepEqual, isObject, type Json, type JsonObject } from './json.js';

/** `invalid` becomes 422 (the patch is well-formed but cannot apply), `malformed` becomes 400. */
export class PatchError extends Error {
  constructor(
    readonly kind: 'invalid' | 'malformed',
    message: string,
  ) {
    super(message);
  }
}

export function mergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  const out: JsonObject = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k] ?? null, v);
  }
  return out;
}

// ---------------------------------------------------------------- JSON patch (RFC 6902)

type Container = JsonObject | Json[];

function parsePointer(pointer: unknown): string[] {
  if (typeof pointer !== 'string') throw new PatchError('malformed', 'path must be a string');
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw new PatchError('malformed', `invalid JSON pointer "${pointer}"`);
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function resolveParent(doc: Json, tokens: string[], pointer: string): { parent: Container; key: string } {
  let cur: Json = doc;
  for (const t of tokens.slice(0, -1)) {
    const next: Json | undefined = Array.isArray(cur) ? cur[arrayIndex(cur, t, false, pointer)] : isObject(cur) ? cur[t] : undefined;
    if (next === undefined || next === null || typeof next !== 'object') throw new PatchError('invalid', `doc is missing path: "${pointer}": missing value`);
    cur = next;
  }
  if (cur === null || typeof cur !== 'object') throw new PatchError('invalid', `doc is missing path: "${pointer}": missing value`);
  return { parent: cur, key: tokens[tokens.length - 1]! };
}

function arrayIndex(arr: Json[], token: string, forInsert: boolean, pointer: string): number {
  if (forInsert && token === '-') return arr.length;
  if (!/^(0|[1-9]\d*)$/.test(token)) throw new PatchError('invalid', `unable to access invalid index: "${token}" in "${pointer}"`);
  const i = Number(token);
  if (i > arr.length || (!forInsert && i === arr.length)) throw new PatchError('invalid', `unable to access invalid index: ${i} in "${pointer}"`);
  return i;
}

function getAt(doc: Json, pointer: string): Json {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) return doc;
  const { parent, key } = resolveParent(doc, tokens, pointer);
  const v = Array.isArray(parent) ? parent[arrayIndex(parent, key, false, pointer)] : parent[key];
  if (v === undefined) throw new PatchError('invalid', `doc is missing path: "${pointer}": missing value`);
  return v;
}

function removeAt(doc: Json, pointer: string): Json {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) throw new PatchError('invalid', 'cannot remove the whole document');
  const { parent, key } = resolveParent(doc, tokens, pointer);
  if (Array.isArray(parent)) return parent.splice(arrayIndex(parent, key, false, pointer), 1)[0]!;
  if (!Object.hasOwn(parent, key)) throw new PatchError('invalid', `unable to remove nonexistent key: ${key}: missing value`);
  const v = parent[key]!;
  delete parent[key];
  return v;
}

function addAt(doc: Json, pointer: string, value: Json, replace: boolean): Json {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) return value;
  const { parent, key } = resolveParent(doc, tokens, pointer);
  if (Array.isArray(parent)) {
    const i = arrayIndex(parent, key, !replace, pointer);
    if (replace) parent[i] = value;
    else parent.splice(i, 0, value);
  } else {
    if (replace && !Object.hasOwn(parent, key)) throw new PatchError('invalid', `replace operation does not apply: doc is missing key: ${pointer}: missing value`);
    parent[key] = value;
  }
  return doc;
}

export function jsonPatch(target: Json, ops: unknown): Json {
  if (!Array.isArray(ops)) throw new PatchError('malformed', 'json patch must be an array of operations');
  let doc = clone(target);
  for (const [i, op] of ops.entries()) {
    if (!isObject(op) || typeof op.op !== 'string') throw new PatchError('malformed', `operation ${i} has no "op"`);
    const path = op.path;
    if (typeof path !== 'string') throw new PatchError('malformed', `operation ${i} (${op.op}) has no "path"`);
    const needsValue = op.op === 'add' || op.op === 'replace' || op.op === 'test';
    if (needsValue && !Object.hasOwn(op, 'value')) throw new PatchError('malformed', `operation ${i} (${op.op}) has no "value"`);
    switch (op.op) {
      case 'add':
        doc = addAt(doc, path, clone(op.value!), false);
        break;
      case 'replace':
        doc = addAt(doc, path, clone(op.value!), true);
        break;
      case 'remove':
        removeAt(doc, path);
        break;
      case 'move': {
        if (typeof op.from !== 'string') throw new PatchError('malformed', `operation ${i} (move) has no "from"`);
        const v = removeAt(doc, op.from);
        doc = addAt(doc, path, v, false);
        break;
      }
      case 'copy': {
        if (typeof op.from !== 'string') throw new PatchError('malformed', `operation ${i} (copy) has no "from"`);
        doc = addAt(doc, path, clone(getAt(doc, op.from)), false);
        break;
      }
      case 'test':
        if (!deepEqual(getAt(doc, path), op.value)) throw new PatchError('invalid', `testing value ${path} failed: test failed`);
        break;
      default:
        throw new PatchError('malformed', `Unexpected kind: ${op.op}`);
    }
  }
  return doc;
}

// ---------------------------------------------------------------- strategic merge patch

/** How a list field merges, keyed by its path of field names from the object root (list indexes left out). */
export interface ListStrategy {
  /** Lists of objects merged element-wise by this key. */
  mergeKey?: string;
  /** Lists of scalars merged as a set. */
  set?: boolean;
}
export type PatchSchema = Readonly<Record<string, ListStrategy>>;

const DELETE = Symbol('delete');

export function strategicMergePatch(target: Json, patch: unknown, schema: PatchSchema): Json {
  if (!isObject(patch)) throw new PatchError('malformed', 'strategic merge patch must be a JSON object');
  const r = mergeMap(isObject(target) ? target : {}, patch, '', schema);
  return r === DELETE ? {} : r;
}

function stripDirectives(v: Json, path: string, schema: PatchSchema): Json {
  if (isObject(v)) {
    const r = mergeMap({}, v, path, schema);
    return r === DELETE ? {} : r;
  }
  if (Array.isArray(v)) return v.filter((e) => !(isObject(e) && typeof e.$patch === 'string')).map((e) => stripDirectives(e, path, schema));
  return v;
}

function mergeMap(orig: JsonObject, patch: JsonObject, path: string, schema: PatchSchema): JsonObject | typeof DELETE {
  const directive = patch.$patch;
  if (directive === 'delete') return DELETE;
  if (directive === 'replace') {
    const { $patch: _ignored, ...rest } = patch;
    return stripDirectives(rest, path, schema) as JsonObject;
  }
  if (directive !== undefined) throw new PatchError('malformed', `Unknown patch type: ${JSON.stringify(directive)}`);
  const out: JsonObject = { ...orig };
  const orders: [string, Json[]][] = [];
  for (const [k, v] of Object.entries(patch)) {
    const sub = path ? `${path}.${k}` : k;
    if (k === '$retainKeys') continue;
    if (k.startsWith('$setElementOrder/')) {
      if (!Array.isArray(v)) throw new PatchError('malformed', `${k} must be a list`);
      orders.push([k.slice('$setElementOrder/'.length), v]);
      continue;
    }
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const field = k.slice('$deleteFromPrimitiveList/'.length);
      if (!Array.isArray(v)) throw new PatchError('malformed', `${k} must be a list`);
      const cur = out[field];
      if (Array.isArray(cur)) out[field] = cur.filter((e) => !v.some((d) => deepEqual(d, e)));
      continue;
    }
    if (k.startsWith('$')) throw new PatchError('malformed', `unknown directive ${k}`);
    if (v === null) {
      delete out[k];
    } else if (isObject(v)) {
      const cur = out[k];
      const r = isObject(cur) ? mergeMap(cur, v, sub, schema) : mergeMap({}, v, sub, schema);
      if (r === DELETE) delete out[k];
      else out[k] = r;
    } else if (Array.isArray(v)) {
      out[k] = mergeList(Array.isArray(out[k]) ? (out[k] as Json[]) : [], v, sub, schema);
    } else {
      out[k] = v;
    }
  }
  for (const [field, order] of orders) {
    const cur = out[field];
    if (Array.isArray(cur)) out[field] = applyOrder(cur, order, schema[path ? `${path}.${field}` : field]);
  }
  const retain = patch.$retainKeys;
  if (retain !== undefined) {
    if (!Array.isArray(retain) || retain.some((r) => typeof r !== 'string')) throw new PatchError('malformed', '$retainKeys must be a list of field names');
    for (const k of Object.keys(out)) if (!retain.includes(k)) delete out[k];
  }
  return out;
}

function mergeList(orig: Json[], patch: Json[], path: string, schema: PatchSchema): Json[] {
  const strategy = schema[path];
  const replaceAll = patch.some((e) => isObject(e) && e.$patch === 'replace');
  if (!strategy || replaceAll) return stripDirectives(patch, path, schema) as Json[];
  if (strategy.set) {
    const out = [...orig];
    for (const e of patch) if (!out.some((o) => deepEqual(o, e))) out.push(e);
    return out;
  }
  const key = strategy.mergeKey!;
  const out = [...orig];
  for (const e of patch) {
    if (!isObject(e)) throw new PatchError('malformed', `${path}: elements must be objects with the merge key "${key}"`);
    if (!Object.hasOwn(e, key)) throw new PatchError('malformed', `map: ${JSON.stringify(e)} does not contain declared merge key: ${key}`);
    const i = out.findIndex((o) => isObject(o) && deepEqual(o[key], e[key]));
    if (e.$patch === 'delete') {
      if (i >= 0) out.splice(i, 1);
      continue;
    }
    const merged = mergeMap(i >= 0 ? (out[i] as JsonObject) : {}, e, path, schema);
    if (merged === DELETE) {
      if (i >= 0) out.splice(i, 1);
    } else if (i >= 0) out[i] = merged;
    else out.push(merged);
  }
  return out;
}

/** $setElementOrder: listed elements in the given order first, the server's other elements after, as they were. */
function applyOrder(list: Json[], order: Json[], strategy: ListStrategy | undefined): Json[] {
  const keyOf = (e: Json): Json => (strategy?.mergeKey && isObject(e) ? (e[strategy.mergeKey] ?? null) : e);
  const wanted = order.map((o) => (strategy?.mergeKey && isObject(o) ? (o[strategy.mergeKey] ?? null) : o));
  const ranked = list.map((e, i) => {
    const w = wanted.findIndex((x) => deepEqual(x, keyOf(e)));
    return { e, rank: w >= 0 ? w : wanted.length + i };
  });
  return ranked.sort((a, b) => a.rank - b.rank).map((r) => r.e);
}
