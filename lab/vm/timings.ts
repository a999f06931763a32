// Measures the lab's own costs on this machine and prints one JSON object: boot to agent, one exec round
// trip (in the root namespace and in a namespace), building a small topology, power-off. Usage:
//   node dist/lab/vm/timings.js [uml|qemu] [rounds]
// Every figure depends on the host's load; compare only figures from the same run.
import { applyTopology } from './topology.js';
import { resolveBackend, type Backend } from './backends.js';
import { startVm } from './vm.js';

function stats(xs: number[]): { median: number; p90: number; min: number } {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
  return { median: at(0.5), p90: at(0.9), min: s[0] ?? Number.NaN };
}

export async function measure(backend: Backend, rounds = 20): Promise<Record<string, unknown>> {
  let t = Date.now();
  const vm = await startVm({ backend });
  const bootMs = Date.now() - t;
  try {
    const exec: number[] = [];
    for (let i = 0; i < rounds; i++) {
      t = Date.now();
      await vm.run(['true']);
      exec.push(Date.now() - t);
    }
    t = Date.now();
    await applyTopology(vm, {
      lbs: [{ name: 'lb1', ip: '198.51.100.2' }],
      nodes: [
        { name: 'node1', ip: '198.51.100.11', vips: ['192.0.2.10'] },
        { name: 'node2', ip: '198.51.100.12', vips: ['192.0.2.10'] },
      ],
      clients: [{ name: 'client1', ip: '203.0.113.10' }],
    });
    const topologyMs = Date.now() - t;
    const nsExec: number[] = [];
    for (let i = 0; i < rounds; i++) {
      t = Date.now();
      await vm.run(['true'], { ns: 'client1' });
      nsExec.push(Date.now() - t);
    }
    t = Date.now();
    await vm.stop();
    const stopMs = Date.now() - t;
    return { backend, rounds, bootMs, execMs: stats(exec), nsExecMs: stats(nsExec), topologyMs, stopMs };
  } finally {
    await vm.stop();
  }
}

if (process.argv[1]?.endsWith('/lab/vm/timings.js')) {
  const backend = resolveBackend((process.argv[2] as Backend | undefined) ?? undefined);
  const rounds = Number(process.argv[3] ?? 20);
  process.stdout.write(`${JSON.stringify(await measure(backend, rounds))}\n`);
}
