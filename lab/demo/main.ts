// `npm run demo`: the story of shared/seeds told by the real daemon in the lab (see story.ts and docs/lab.md).
// Exit 0 only if every step did what it says; otherwise 1, with the failed step named and the tails of the
// logs that explain it. The lab's own cleanup removes the VM and its directories whatever happens, also on
// Ctrl-C.
import { readFileSync } from 'node:fs';
import { demoSteps, type DemoState } from './story.js';
import { runStory } from './steps.js';

const write = (text: string) => process.stdout.write(text);

function logTails(st: DemoState): string {
  const lab = st.lab;
  if (!lab) return '';
  const out: string[] = [];
  const procs = [...lab.daemonHistory, lab.vm.process('kube-sim'), lab.vm.process('request-loop')];
  for (const p of procs) {
    if (!p) continue;
    let text = '';
    try {
      text = readFileSync(p.logPath, 'utf8');
    } catch {
      continue;
    }
    const lines = text.trimEnd().split('\n').slice(-15);
    out.push(`--- last lines of ${p.name} (${p.logPath}) ---`, ...lines);
  }
  return out.length ? `\n${out.join('\n')}\n` : '';
}

async function main(): Promise<number> {
  write('ipvs-lb demo: a Service of type LoadBalancer gets a VIP, traffic flows by IPVS direct routing to the nodes,\n');
  write('and the VIP survives the death of its LB host. Real daemon, real IPVS and keepalived, inside a lab VM;\n');
  write('only the Kubernetes API server is simulated.\n');
  const st: DemoState = {};
  try {
    const result = await runStory(demoSteps(st), write);
    if (!result.ok) write(logTails(st));
    return result.ok ? 0 : 1;
  } finally {
    if (st.lab && !st.stopped) await st.lab.vm.dispose();
  }
}

process.exitCode = await main();
