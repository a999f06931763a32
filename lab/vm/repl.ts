// Interactive guest for debugging: boots a VM (optionally with a topology from a JSON file) and runs each
// line typed on stdin as a bash script, `@NS cmd...` runs it in namespace NS. Ctrl-D or `exit` stops it.
//   node dist/lab/vm/repl.js [--qemu] [--topology spec.json]
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { applyTopology, type TopologySpec } from './topology.js';
import { startVm } from './vm.js';

const args = process.argv.slice(2);
const topoAt = args.indexOf('--topology');
const vm = await startVm({ backend: args.includes('--qemu') ? 'qemu' : undefined, onConsole: (l) => process.stderr.write(`[console] ${l}\n`) });
process.stderr.write(`lab: ${vm.backend} guest up, run dir ${vm.runDir}\n`);
try {
  if (topoAt >= 0) {
    const spec = JSON.parse(readFileSync(args[topoAt + 1] ?? '', 'utf8')) as TopologySpec;
    const t = await applyTopology(vm, spec);
    process.stderr.write(`lab: topology built in ${t.durationMs} ms; servers ${[...t.servers.keys()].join(' ')}\n`);
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr, prompt: 'guest> ' });
  rl.prompt();
  for await (const line of rl) {
    if (line.trim() === 'exit') break;
    if (line.trim()) {
      const m = /^@(\S+)\s+(.*)$/.exec(line);
      try {
        const r = await vm.exec(m ? (m[2] ?? '') : line, { ns: m?.[1], timeoutMs: 600_000 });
        process.stdout.write(r.stdout);
        process.stderr.write(r.stderr);
        process.stderr.write(`[exit ${r.code}, ${r.durationMs} ms]\n`);
      } catch (e) {
        process.stderr.write(`${(e as Error).message}\n`);
      }
    }
    rl.prompt();
  }
} finally {
  process.stderr.write(`lab: artifacts in ${await vm.stop()} (removed when this exits; IPVS_LB_LAB_KEEP=1 keeps them)\n`);
}
