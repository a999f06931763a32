// Label and field selectors with kube-apiserver's grammar. Parsing is separate from matching so that a bad
// selector is refused (400) before any object is looked at.
export type LabelRequirement =
  | { key: string; op: 'exists' | '!exists' }
  | { key: string; op: '=' | '!='; value: string }
  | { key: string; op: 'in' | 'notin'; values: string[] }
  | { key: string; op: 'gt' | 'lt'; value: number };

export type FieldRequirement = { field: string; op: '=' | '!='; value: string };

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

const KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** Splits on commas that are not inside parentheses ("a in (x,y),b" has two requirements). */
function splitTopLevel(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

export function parseLabelSelector(text: string | undefined): Parsed<LabelRequirement[]> {
  if (text === undefined || text.trim() === '') return { ok: true, value: [] };
  const reqs: LabelRequirement[] = [];
  for (const raw of splitTopLevel(text)) {
    const part = raw.trim();
    if (part === '') return { ok: false, error: `unable to parse requirement: empty requirement in "${text}"` };
    let m: RegExpMatchArray | null;
    let req: LabelRequirement;
    if ((m = /^!\s*(\S+)$/.exec(part))) req = { key: m[1]!, op: '!exists' };
    else if ((m = /^(\S+?)\s+(in|notin)\s*\(([^)]*)\)$/.exec(part))) {
      const values = m[3]!.split(',').map((v) => v.trim());
      if (m[2] === 'in' && values.length === 1 && values[0] === '') {
        return { ok: false, error: `unable to parse requirement: for 'in', 'notin' operators, values set can't be empty` };
      }
      const bad = values.find((v) => !VALUE.test(v));
      if (bad !== undefined) return { ok: false, error: `unable to parse requirement: values[0][${m[1]}]: Invalid value: "${bad}": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.'` };
      req = { key: m[1]!, op: m[2] as 'in' | 'notin', values };
    } else if ((m = /^([^=!<>\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(part))) {
      if (!VALUE.test(m[3]!)) return { ok: false, error: `unable to parse requirement: invalid label value: "${m[3]}"` };
      req = { key: m[1]!, op: m[2] === '!=' ? '!=' : '=', value: m[3]! };
    } else if ((m = /^([^=!<>\s]+)\s*([<>])\s*(-?\d+)$/.exec(part))) {
      req = { key: m[1]!, op: m[2] === '>' ? 'gt' : 'lt', value: Number(m[3]) };
    } else if ((m = /^(\S+)$/.exec(part))) req = { key: m[1]!, op: 'exists' };
    else return { ok: false, error: `unable to parse requirement: found '${part}', expected: in, notin, =, ==, !=, gt, lt` };
    if (!KEY.test(req.key) || req.key.length > 317) {
      return { ok: false, error: `unable to parse requirement: invalid label key "${req.key}": name part must consist of alphanumeric characters, '-', '_' or '.'` };
    }
    reqs.push(req);
  }
  return { ok: true, value: reqs };
}

export function matchLabels(reqs: readonly LabelRequirement[], labels: Readonly<Record<string, unknown>> | undefined): boolean {
  const l = labels ?? {};
  return reqs.every((r) => {
    const has = Object.hasOwn(l, r.key);
    const v = has ? String(l[r.key]) : undefined;
    switch (r.op) {
      case 'exists':
        return has;
      case '!exists':
        return !has;
      case '=':
        return v === r.value;
      case '!=':
        return v !== r.value;
      case 'in':
        return v !== undefined && r.values.includes(v);
      case 'notin':
        return v === undefined || !r.values.includes(v);
      case 'gt':
        return v !== undefined && /^-?\d+$/.test(v) && Number(v) > r.value;
      case 'lt':
        return v !== undefined && /^-?\d+$/.test(v) && Number(v) < r.value;
    }
  });
}

/** `supported` is the set of field labels the resource type accepts; anything else is refused like the real server. */
export function parseFieldSelector(text: string | undefined, supported: ReadonlySet<string>): Parsed<FieldRequirement[]> {
  if (text === undefined || text.trim() === '') return { ok: true, value: [] };
  const reqs: FieldRequirement[] = [];
  for (const raw of text.split(',')) {
    const part = raw.trim();
    const m = /^([^=!\s]+)\s*(==|=|!=)\s*(.*)$/.exec(part);
    if (!m) return { ok: false, error: `invalid selector: '${text}'; can't understand '${part}'` };
    if (!supported.has(m[1]!)) return { ok: false, error: `field label not supported: ${m[1]}` };
    reqs.push({ field: m[1]!, op: m[2] === '!=' ? '!=' : '=', value: m[3]! });
  }
  return { ok: true, value: reqs };
}

export function matchFields(reqs: readonly FieldRequirement[], fields: (field: string) => string): boolean {
  return reqs.every((r) => (fields(r.field) === r.value) === (r.op === '='));
}
