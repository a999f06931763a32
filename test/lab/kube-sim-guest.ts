// Runs the Kubernetes API simulator inside the lab guest (in the LB host's namespace, beside the daemon) with
// the nodes a test describes, dual-stack ones included, which `ipvs-lb lab` (three IPv4 nodes) cannot give.
// Usage: node dist/test/lab/kube-sim-guest.js SPEC.json
//   SPEC: { dir, port, nodes: [{ name, ips: [v4, v6?] }], serviceCIDRs? }
// Writes DIR/kubeconfig and DIR/admin.json ({ url, token }: the admin API under /kube-sim/v1/ steers node
// readiness and endpoints from a shell) and runs until SIGTERM.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, KubeSim } from '../../lab/kube-sim/index.js';

interface Spec {
  dir: string;
  port: number;
  nodes: Array<{ name: string; ips: string[] }>;
  serviceCIDRs?: string[];
}

const spec = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as Spec;
const sim = await KubeSim.start({ dir: spec.dir, port: spec.port, ...(spec.serviceCIDRs ? { serviceCIDRs: spec.serviceCIDRs } : {}) });
const cluster = new Cluster(sim);
for (const n of spec.nodes) cluster.addNode(n.name, { internalIP: n.ips });
cluster.setKubeProxyConfig({ mode: 'ipvs', strictARP: true });
sim.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ipvs-lb' } });
await sim.writeKubeconfig();
writeFileSync(join(spec.dir, 'admin.json'), JSON.stringify({ url: sim.url, token: sim.token }));
process.stdout.write(`kube-sim listening on ${sim.url}\n`);
await new Promise<void>((resolve) => {
  process.once('SIGTERM', () => resolve());
  process.once('SIGINT', () => resolve());
});
await sim.stop();
