// `ipvs-lb lab`: a simulated Kubernetes API with a sample three-node cluster, so ipvs-lb (and kubectl) can be
// tried without a cluster. The simulator lives in lab/, outside the shipped package, hence the dynamic import.
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { ExitCode } from './exit-codes.js';
import type { CliContext } from './context.js';
import type { KubeSim, sampleCluster as SampleCluster } from '../../lab/kube-sim/index.js';

interface LabOptions {
  port: string;
  dir?: string;
  token?: string;
}

export function registerLab(program: Command, ctx: CliContext): void {
  program
    .command('lab')
    .description('run a simulated Kubernetes API (HTTPS on loopback) with three nodes, until Ctrl-C')
    .option('--port <port>', 'listening port (0 picks a free one)', '0')
    .option('--dir <dir>', 'keep certificates and kubeconfig in this directory (default: a temporary one, removed on exit)')
    .option('--token <token>', 'bearer token clients must send (default: random)')
    .action(async (opts: LabOptions) => {
      const port = Number(opts.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) {
        ctx.err(`--port: must be 0-65535 (got ${opts.port})`);
        ctx.exit(ExitCode.usage);
        return;
      }
      let sim: KubeSim;
      let sampleCluster: typeof SampleCluster;
      try {
        const lab = await import('../../lab/kube-sim/index.js');
        sampleCluster = lab.sampleCluster;
        if (opts.dir) await mkdir(resolve(opts.dir), { recursive: true });
        sim = await lab.KubeSim.start({ port, ...(opts.dir ? { dir: resolve(opts.dir) } : {}), ...(opts.token ? { token: opts.token } : {}) });
      } catch (err) {
        ctx.err(`ipvs-lb lab: ${(err as Error).message}`);
        ctx.exit(ExitCode.failed);
        return;
      }
      sampleCluster(sim);
      const kubeconfig = await sim.writeKubeconfig();
      // The token goes into a header file for curl's -H @FILE, so it is not in the shell history.
      const header = join(sim.dir, 'admin.header');
      await writeFile(header, `Authorization: Bearer ${sim.token}\n`, { mode: 0o600 });
      const admin = (args: string, path: string) => `  curl -sS --cacert ${sim.caFile} -H @${header} ${args}${args ? ' ' : ''}${sim.url}/kube-sim/v1/${path}`;
      // The set-up script unpacks Debian's kubectl 1.20 into the checkout; point at it when it is there.
      const bundled = join(fileURLToPath(new URL('../../..', import.meta.url)), '.cache/kubernetes-client/usr/bin/kubectl');
      const kubectl = existsSync(bundled) ? relative(process.cwd(), bundled) || bundled : 'kubectl';
      ctx.out(
        [
          `Kubernetes API simulator listening on ${sim.url}`,
          `kubeconfig: ${kubeconfig}`,
          'nodes: node-1 198.51.100.11, node-2 198.51.100.12, node-3 198.51.100.13 (kube-proxy: ipvs, strictARP)',
          '',
          'Try:',
          `  ${kubectl} --kubeconfig ${kubeconfig} get nodes -o wide`,
          `  ${kubectl} --kubeconfig ${kubeconfig} create service loadbalancer whoami --tcp=80:80`,
          `  ${kubectl} --kubeconfig ${kubeconfig} get svc`,
          '',
          'Steer it through its admin API (same token; docs/kube-sim.md, "Admin HTTP API"):',
          '  # requests received, by verb and resource',
          admin('', 'requests'),
          '  # node-2 goes NotReady ({"ready":true} brings it back)',
          admin(`-X PUT -d '{"ready":false}'`, 'nodes/node-2/ready'),
          "  # the Service's endpoints run on node-1 and node-3",
          admin(`-X PUT -d '{"endpoints":[{"node":"node-1"},{"node":"node-3"}]}'`, 'endpoints/default/whoami'),
          '  # every open watch ends',
          admin('-X POST', 'drop-watches'),
          '  # the next 5 requests fail with 500 (429 and 503 too; {"durationMs":N} instead of count)',
          admin(`-X POST -d '{"status":500,"count":5}'`, 'faults'),
          '  # a 60 s API outage (connections refused), objects kept',
          admin(`-X POST -d '{"downMs":60000}'`, 'restart'),
          '',
          'Ctrl-C stops it.',
        ].join('\n'),
      );
      await new Promise<void>((done) => {
        const stop = () => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          done();
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
      await sim.stop();
      ctx.out('simulator stopped');
    });
}
