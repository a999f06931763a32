// A small typed reader over parsed YAML that collects every problem instead of stopping at the first, so that
// an operator fixes a config in one round. Each problem reads `path: what is wrong (got VALUE)`.

export class Problems {
  readonly list: string[] = [];
  add(path: string, what: string, value?: unknown): void {
    this.list.push(`${path || '(top level)'}: ${what}${value === undefined ? '' : ` (got ${show(value)})`}`);
  }
  get empty(): boolean {
    return this.list.length === 0;
  }
}

export function show(value: unknown): string {
  if (value === null) return 'null';
  let text: string;
  try {
    text = typeof value === 'string' ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value));
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** `a.b`, `a[0]`; a key that is not a plain name (an unknown one from a broken file) is quoted: `a["x: y"]`. */
const join = (path: string, key: string | number): string => {
  if (typeof key === 'number') return `${path}[${key}]`;
  if (!/^[A-Za-z0-9_-]+$/.test(key)) return `${path}[${JSON.stringify(key.length > 60 ? `${key.slice(0, 57)}...` : key)}]`;
  return path ? `${path}.${key}` : key;
};

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

export const isMapping = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

interface Bounds {
  min?: number;
  max?: number;
}

/** A mapping in the config. Reading a key that is absent yields the default (or reports it as required). */
export class Section {
  private readonly data: Record<string, unknown>;

  constructor(
    value: unknown,
    readonly path: string,
    readonly problems: Problems,
    known: readonly string[],
  ) {
    if (value === undefined || value === null) {
      this.data = {};
    } else if (!isMapping(value)) {
      problems.add(path, 'must be a mapping', value);
      this.data = {};
    } else {
      this.data = value;
      for (const key of Object.keys(value)) {
        if (known.includes(key)) continue;
        const near = known.find((k) => editDistance(k, key) <= 2);
        problems.add(join(path, key), `unknown field${near ? `; did you mean "${near}"?` : ''}`, value[key]);
      }
    }
  }

  has(key: string): boolean {
    return this.data[key] !== undefined && this.data[key] !== null;
  }

  raw(key: string): unknown {
    return this.data[key];
  }

  at(key: string | number): string {
    return join(this.path, key);
  }

  child(key: string, known: readonly string[]): Section {
    return new Section(this.data[key], this.at(key), this.problems, known);
  }

  private missing(key: string, required: boolean): void {
    if (required) this.problems.add(this.at(key), 'is required');
  }

  string(key: string, opts: { default?: string; required?: boolean; check?: (v: string) => string | undefined } = {}): string | undefined {
    const v = this.data[key];
    if (v === undefined || v === null) {
      this.missing(key, opts.required ?? false);
      return opts.default;
    }
    if (typeof v !== 'string' || v.length === 0) {
      this.problems.add(this.at(key), 'must be a non-empty string', v);
      return opts.default;
    }
    const err = opts.check?.(v);
    if (err) {
      this.problems.add(this.at(key), err, v);
      return opts.default;
    }
    return v;
  }

  number(key: string, opts: Bounds & { default?: number; required?: boolean; integer?: boolean } = {}): number | undefined {
    const v = this.data[key];
    if (v === undefined || v === null) {
      this.missing(key, opts.required ?? false);
      return opts.default;
    }
    const kind = opts.integer ? 'an integer' : 'a number';
    if (typeof v !== 'number' || !Number.isFinite(v) || (opts.integer && !Number.isInteger(v))) {
      this.problems.add(this.at(key), `must be ${kind}`, v);
      return opts.default;
    }
    if ((opts.min !== undefined && v < opts.min) || (opts.max !== undefined && v > opts.max)) {
      const range = opts.max === undefined ? `at least ${opts.min}` : opts.min === undefined ? `at most ${opts.max}` : `between ${opts.min} and ${opts.max}`;
      this.problems.add(this.at(key), `must be ${kind} ${range}`, v);
      return opts.default;
    }
    return v;
  }

  integer(key: string, opts: Bounds & { default?: number; required?: boolean } = {}): number | undefined {
    return this.number(key, { ...opts, integer: true });
  }

  boolean(key: string, def: boolean): boolean {
    const v = this.data[key];
    if (v === undefined || v === null) return def;
    if (typeof v !== 'boolean') {
      this.problems.add(this.at(key), 'must be true or false', v);
      return def;
    }
    return v;
  }

  oneOf<T extends string>(key: string, allowed: readonly T[], def?: T): T | undefined {
    const v = this.data[key];
    if (v === undefined || v === null) return def;
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
      this.problems.add(this.at(key), `must be one of ${allowed.join(', ')}`, v);
      return def;
    }
    return v as T;
  }

  /** A list whose items are checked by `each`; invalid items are reported and dropped. */
  list<T>(key: string, each: (item: unknown, path: string) => T | undefined, opts: { required?: boolean; nonEmpty?: boolean } = {}): T[] {
    const v = this.data[key];
    if (v === undefined || v === null) {
      this.missing(key, opts.required ?? false);
      return [];
    }
    if (!Array.isArray(v)) {
      this.problems.add(this.at(key), 'must be a list', v);
      return [];
    }
    if (opts.nonEmpty && v.length === 0) this.problems.add(this.at(key), 'must not be empty', v);
    const out: T[] = [];
    v.forEach((item, i) => {
      const r = each(item, this.at(key).concat(`[${i}]`));
      if (r !== undefined) out.push(r);
    });
    return out;
  }

  stringList(key: string, check?: (v: string) => string | undefined): string[] {
    return this.list(key, (item, path) => {
      if (typeof item !== 'string' || item.length === 0) {
        this.problems.add(path, 'must be a non-empty string', item);
        return undefined;
      }
      const err = check?.(item);
      if (err) {
        this.problems.add(path, err, item);
        return undefined;
      }
      return item;
    });
  }
}
