// How long `validate` and a SIGHUP reload spend parsing a large config: 200 pools of mixed families.
// Baseline: parsing the same YAML without validation, so the ratio is the validator's own cost.
import { performance } from 'node:perf_hooks';
import { parse } from 'yaml';
import { parseConfigText } from '../src/config/load.js';
import { defineBenchmark } from './harness.js';

function bigConfig(pools: number): string {
  const lines = ['interface: eth0', 'vrrp:', '  enabled: false', 'pools:'];
  for (let i = 0; i < pools; i++) {
    lines.push(`  - name: pool-${i}`, '    addresses:', `      - 2001:db8:${i.toString(16)}::/64`, `      - 10.${i >> 8}.${i & 255}.0/24`);
  }
  return lines.join('\n');
}

export default defineBenchmark({
  name: 'config',
  description: 'parse and validate a config of 200 pools (baseline: YAML parsing alone)',
  async run({ quick }) {
    const text = bigConfig(200);
    const rounds = quick ? 5 : 30;
    const time = (fn: () => void) => {
      fn();
      const t0 = performance.now();
      for (let i = 0; i < rounds; i++) fn();
      return (performance.now() - t0) / rounds;
    };
    const validateMs = time(() => {
      const r = parseConfigText(text, 'bench');
      if (!r.ok) throw new Error(r.problems.join('\n'));
    });
    const yamlMs = time(() => parse(text));
    return {
      validate_ms: Math.round(validateMs * 100) / 100,
      ratio_vs_yaml_only: Math.round((validateMs / yamlMs) * 100) / 100,
      baseline: { yaml_parse_ms: Math.round(yamlMs * 100) / 100 },
    };
  },
});
