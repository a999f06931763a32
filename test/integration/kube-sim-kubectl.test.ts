// The real kubectl (Debian's kubernetes-client 1.20) against the simulator, with the walkthrough of the
// seed article: apply a Deployment and a LoadBalancer Service `whoami`, see EXTERNAL-IP <pending>, let a
// controller write the status (here: a merge-patch through client-node), see the IP, delete both.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CoreV1Api, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { KubeSim } from '../../lab/kube-sim/index.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../..', import.meta.url));
const kubectlPath = join(root, '.cache/kubernetes-client/usr/bin/kubectl');

// From ../shared/seeds/002_72b3be2093a0d3e8.txt, unchanged.
const WALKTHROUGH = `apiVersion: v1
kind: Service
metadata:
  labels:
    name: whoami
  name: whoami
spec:
  ports:
  - port: 80
    name: web
    protocol: TCP
  selector:
    app: whoami
  type: LoadBalancer
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: whoami
  labels:
    app: whoami
spec:
  replicas: 3
  selector:
    matchLabels:
      app: whoami
  template:
    metadata:
      labels:
        app: whoami
    spec:
      containers:
      - name: whoami
        image: containous/whoami:latest
        imagePullPolicy: IfNotPresent
        ports:
        - containerPort: 80
          name: web
`;

/** Rows of `kubectl get` output as objects keyed by column header. */
function table(out: string): Record<string, string>[] {
  const lines = out.trimEnd().split('\n');
  const header = lines[0]!;
  const starts = [...header.matchAll(/\S+/g)].map((m) => m.index);
  const names = [...header.matchAll(/\S+/g)].map((m) => m[0]);
  return lines.slice(1).map((l) => Object.fromEntries(names.map((n, i) => [n, l.slice(starts[i], starts[i + 1]).trim()])));
}

describe('kubectl against kube-sim', () => {
  let sim: KubeSim;
  let work: string;
  let kubeconfig: string;
  let manifest: string;

  const kubectl = async (...args: string[]) => {
    const r = await run(kubectlPath, args, { env: { PATH: process.env.PATH ?? '', HOME: work, KUBECONFIG: kubeconfig }, timeout: 30_000 });
    return r.stdout;
  };

  before(async () => {
    if (!existsSync(kubectlPath)) spawnSync(process.execPath, [join(root, 'scripts/setup.mjs'), '--no-build'], { stdio: 'inherit' });
    assert.ok(existsSync(kubectlPath), `kubectl missing at ${kubectlPath}; run node scripts/setup.mjs`);
    work = await mkdtemp(join(tmpdir(), 'kube-sim-kubectl-'));
    sim = await KubeSim.start();
    kubeconfig = await sim.writeKubeconfig(join(work, 'kubeconfig'));
    manifest = join(work, 'whoami.yaml');
    await writeFile(manifest, WALKTHROUGH);
  });

  after(async () => {
    await sim?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('applies the walkthrough, shows <pending>, then the IP a controller wrote, and deletes it', async () => {
    const applied = await kubectl('apply', '-f', manifest);
    assert.match(applied, /^service\/whoami created$/m);
    assert.match(applied, /^deployment\.apps\/whoami created$/m);

    const svc = table(await kubectl('get', 'svc')).find((r) => r.NAME === 'whoami');
    assert.ok(svc, 'whoami is listed');
    assert.equal(svc.TYPE, 'LoadBalancer');
    assert.equal(svc['EXTERNAL-IP'], '<pending>');
    assert.match(svc['CLUSTER-IP']!, /^203\.0\.113\.(1[3-9][0-9]|2[0-5][0-9])$/);
    const nodePort = /^80:(\d+)\/TCP$/.exec(svc['PORT(S)']!);
    assert.ok(nodePort && Number(nodePort[1]) >= 30000 && Number(nodePort[1]) <= 32767, `PORT(S) ${svc['PORT(S)']}`);
    const deploy = table(await kubectl('get', 'deployments'));
    assert.deepEqual(deploy.map((r) => [r.NAME, r.READY]), [['whoami', '0/3']]);

    const core = sim.kubeConfig().makeApiClient(CoreV1Api);
    await core.patchNamespacedServiceStatus(
      { name: 'whoami', namespace: 'default', body: { status: { loadBalancer: { ingress: [{ ip: '192.0.2.10', ipMode: 'VIP' }] } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    const after = table(await kubectl('get', 'svc', 'whoami'));
    assert.equal(after[0]?.['EXTERNAL-IP'], '192.0.2.10');
    assert.equal(after[0]?.['PORT(S)'], svc['PORT(S)'], 'the nodePort survives the status write');

    // A second apply has nothing to change: the status written by the controller is not the user's to reset.
    const again = await kubectl('apply', '-f', manifest);
    assert.match(again, /^service\/whoami unchanged$/m);
    assert.equal(table(await kubectl('get', 'svc', 'whoami'))[0]?.['EXTERNAL-IP'], '192.0.2.10');

    const yaml = await kubectl('get', 'svc', 'whoami', '-o', 'jsonpath={.spec.externalTrafficPolicy} {.spec.ports[0].targetPort} {.metadata.annotations}');
    assert.match(yaml, /^Cluster 80 .*last-applied-configuration/);

    const deleted = await kubectl('delete', '-f', manifest);
    assert.match(deleted, /^service "whoami" deleted$/m);
    assert.match(deleted, /^deployment\.apps "whoami" deleted$/m);
    assert.deepEqual(table(await kubectl('get', 'svc')).map((r) => r.NAME), ['kubernetes']);
    const { stderr } = await run(kubectlPath, ['get', 'deployments'], { env: { PATH: process.env.PATH ?? '', HOME: work, KUBECONFIG: kubeconfig } });
    assert.match(stderr, /No resources found in default namespace/);
  });

  it('edits the Service with apply (strategic merge patch with $setElementOrder) and keeps allocations', async () => {
    await kubectl('apply', '-f', manifest);
    const before = sim.get('v1', 'Service', 'whoami', 'default')!;
    const changed = WALKTHROUGH.replace('  - port: 80\n    name: web\n    protocol: TCP\n', '  - port: 80\n    name: web\n    protocol: TCP\n  - port: 443\n    name: websecure\n    protocol: TCP\n');
    await writeFile(manifest, changed);
    assert.match(await kubectl('apply', '-f', manifest), /^service\/whoami configured$/m);
    const svc = sim.get('v1', 'Service', 'whoami', 'default')!;
    const spec = svc.spec as { clusterIP: string; ports: { port: number; nodePort: number; name: string }[] };
    const beforeSpec = before.spec as typeof spec;
    assert.equal(spec.clusterIP, beforeSpec.clusterIP);
    assert.deepEqual(spec.ports.map((p) => [p.name, p.port]), [['web', 80], ['websecure', 443]]);
    assert.equal(spec.ports[0]!.nodePort, beforeSpec.ports[0]!.nodePort, 'the existing port keeps its nodePort');
    assert.notEqual(spec.ports[1]!.nodePort, spec.ports[0]!.nodePort);
    await kubectl('delete', '-f', manifest);
  });

  it('refuses an invalid Service with the field named, and requires the token', async () => {
    const bad = join(work, 'bad.yaml');
    await writeFile(bad, 'apiVersion: v1\nkind: Service\nmetadata:\n  name: bad\nspec:\n  type: LoadBalancer\n  ports:\n  - port: 70000\n');
    await assert.rejects(kubectl('apply', '--validate=false', '-f', bad), (err: { stderr: string }) => {
      assert.match(err.stderr, /spec\.ports\[0\]\.port: Invalid value: 70000: must be between 1 and 65535, inclusive/);
      return true;
    });
    await assert.rejects(kubectl('get', 'svc', '--token', 'wrong'), (err: { stderr: string }) => {
      assert.match(err.stderr, /Unauthorized|You must be logged in/);
      return true;
    });
  });
});

describe('ipvs-lb lab', () => {
  it('serves a three-node sample cluster to kubectl and removes its temp dir on Ctrl-C', async () => {
    const home = await mkdtemp(join(tmpdir(), 'kube-sim-lab-'));
    const child = spawn(process.execPath, [join(root, 'bin/ipvs-lb.js'), 'lab', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
      const kubeconfig = await new Promise<string>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no kubeconfig line in: ${out}`)), 30_000);
        child.stdout.on('data', () => {
          const m = /^kubeconfig: (\S+)$/m.exec(out);
          if (m && out.includes('Ctrl-C')) {
            clearTimeout(t);
            resolve(m[1]!);
          }
        });
        child.on('exit', () => reject(new Error(`lab exited early: ${out}`)));
      });
      const env = { PATH: process.env.PATH ?? '', HOME: home, KUBECONFIG: kubeconfig };
      const nodes = table((await run(kubectlPath, ['get', 'nodes', '-o', 'wide'], { env })).stdout);
      assert.deepEqual(nodes.map((n) => [n.NAME, n.STATUS, n['INTERNAL-IP']]), [
        ['node-1', 'Ready', '198.51.100.11'],
        ['node-2', 'Ready', '198.51.100.12'],
        ['node-3', 'Ready', '198.51.100.13'],
      ]);
      const cm = await run(kubectlPath, ['-n', 'kube-system', 'get', 'configmap', 'kube-proxy', '-o', 'jsonpath={.data.config\\.conf}'], { env });
      assert.match(cm.stdout, /mode: ipvs/);
      assert.match(cm.stdout, /strictARP: true/);

      // The admin API examples it prints work as printed, from a shell.
      const example = (path: string) => out.split('\n').find((l) => l.trim().startsWith('curl ') && l.includes(`/kube-sim/v1/${path}`))?.trim();
      const header = /-H @(\S+)/.exec(example('requests') ?? '')?.[1];
      assert.ok(header, `no admin example in: ${out}`);
      assert.equal(statSync(header).mode & 0o777, 0o600, 'the token file is private');
      const counts = JSON.parse((await run('sh', ['-c', example('requests')!], { env })).stdout) as { total: number; byVerbAndResource: Record<string, number> };
      assert.ok(counts.byVerbAndResource['list nodes']! >= 1, JSON.stringify(counts));
      assert.match((await run('sh', ['-c', example('nodes/node-2/ready')!], { env })).stdout, /"ok":true/);
      const after = table((await run(kubectlPath, ['get', 'nodes'], { env })).stdout);
      assert.deepEqual(after.map((n) => [n.NAME, n.STATUS]), [['node-1', 'Ready'], ['node-2', 'NotReady'], ['node-3', 'Ready']]);
      child.kill('SIGINT');
      assert.equal(await exited, 0);
      assert.match(out, /simulator stopped/);
      assert.equal(existsSync(kubeconfig), false, 'the temp dir is gone');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await rm(home, { recursive: true, force: true });
    }
  });
});
