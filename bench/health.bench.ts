// Backend health at 10,000 Services × 100 nodes: probes per interval, probes per second and CPU per 1,000
// probes of the real health monitor, against the naive one-probe-per-(Service, node) checker measured in the
// same run. The probing happens in bench/health-netns.ts, inside a network namespace of its own (`unshare
// -n`, only lo up), so no probe ever touches this machine's interfaces.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { defineBenchmark } from './harness.js';

export default defineBenchmark({
  name: 'health',
  description: 'health probes for 10,000 Services × 100 nodes in a private network namespace (baseline: one probe per (Service, node))',
  async run({ quick }) {
    const child = fileURLToPath(new URL('./health-netns.js', import.meta.url));
    // A shell raises the descriptor limit to the hard one: 1,000 healthCheckNodePort listeners plus 256 probes in flight.
    const r = spawnSync('unshare', ['-n', 'sh', '-c', 'ulimit -n "$(ulimit -Hn)" && exec "$0" "$@"', process.execPath, child, ...(quick ? ['--quick'] : [])], {
      encoding: 'utf8', maxBuffer: 16 * 1024 * 1024, timeout: 15 * 60 * 1000,
    });
    if (r.error || r.status !== 0) {
      throw new Error(`health bench: unshare -n (needs root, or CAP_SYS_ADMIN) failed: ${r.error?.message ?? `exit ${r.status}`}\n${r.stderr}`);
    }
    const line = r.stdout.trim().split('\n').at(-1) ?? '';
    return JSON.parse(line) as { baseline: Record<string, unknown> };
  },
});
