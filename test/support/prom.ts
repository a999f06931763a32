// A strict parser of the Prometheus text exposition format (0.0.4), so tests read /metrics the way a
// scraper does and a malformed line fails the test instead of being skipped.
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  samples: Sample[];
  types: Map<string, string>;
  /** Samples of one metric whose labels include `match`. */
  find(name: string, match?: Record<string, string>): Sample[];
  /** The one sample of `name` matching `match`; throws when there is none or more than one. */
  value(name: string, match?: Record<string, string>): number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;

function parseLabels(text: string, line: string): { labels: Record<string, string>; rest: string } {
  const labels: Record<string, string> = {};
  let i = 1;
  while (text[i] !== '}') {
    const m = /^([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(text.slice(i));
    if (!m) throw new Error(`bad label at ${i} in: ${line}`);
    i += m[0].length;
    let v = '';
    for (;;) {
      const c = text[i++];
      if (c === undefined) throw new Error(`unterminated label value in: ${line}`);
      if (c === '"') break;
      if (c === '\\') {
        const e = text[i++];
        v += e === 'n' ? '\n' : e;
      } else v += c;
    }
    labels[m[1]!] = v;
    if (text[i] === ',') i++;
    else if (text[i] !== '}') throw new Error(`expected , or } at ${i} in: ${line}`);
  }
  return { labels, rest: text.slice(i + 1) };
}

export function parseExposition(body: string): Exposition {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of body.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const t = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
      if (t) types.set(t[1]!, t[2]!);
      else if (!/^# HELP \S+/.test(line)) throw new Error(`bad comment line: ${line}`);
      continue;
    }
    const n = NAME.exec(line);
    if (!n) throw new Error(`bad sample line: ${line}`);
    let rest = line.slice(n[0].length);
    let labels: Record<string, string> = {};
    if (rest.startsWith('{')) ({ labels, rest } = parseLabels(rest, line));
    const v = /^ (\S+)( -?\d+)?$/.exec(rest);
    if (!v) throw new Error(`bad value in: ${line}`);
    const value = v[1] === '+Inf' ? Infinity : v[1] === '-Inf' ? -Infinity : Number(v[1]);
    if (Number.isNaN(value) && v[1] !== 'NaN') throw new Error(`bad number in: ${line}`);
    samples.push({ name: n[0], labels, value });
  }
  const find = (name: string, match: Record<string, string> = {}) =>
    samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));
  return {
    samples,
    types,
    find,
    value(name, match = {}) {
      const f = find(name, match);
      if (f.length !== 1) throw new Error(`${f.length} samples of ${name} match ${JSON.stringify(match)}`);
      return f[0]!.value;
    },
  };
}
