// Found by the soak (docs/soak.md): what a ledger records about an allocation (sharing key, ports) must
// follow the Service on the allocator and on the follower alike, because it is what the next Service asking
// to share an address is judged against, on whichever host allocates then. Two real daemons (real SQLite,
// real client-node) against the API simulator.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { KubeSim, sampleCluster } from '../../lab/kube-sim/index.js';
import { eventually, startDaemon, type DaemonHandle } from '../support/daemon.js';

const SHARE = 'ipvs-lb.io/allow-shared-ip';

function svc(name: string, ports: number[], key?: string) {
  const annotations: Record<string, string> = {};
  if (key) annotations[SHARE] = key;
  return {
    apiVersion: 'v1', kind: 'Service',
    metadata: { name, namespace: 'default', annotations },
    spec: { type: 'LoadBalancer', selector: { app: name }, ports: ports.map((port) => ({ name: `p${port}`, port })) },
  };
}

interface Row { name: string; address: string; sharingKey: string | null; ports: string[] }
const rows = async (d: DaemonHandle): Promise<string[]> =>
  (await d.api<{ items: Row[] }>('/api/v1/allocations?limit=1000')).body.items
    .map((r) => `${r.name}=${r.address} key=${r.sharingKey ?? '-'} ports=${r.ports.join(',')}`).sort();

describe('ledger facts follow the Service on every host', { timeout: 180_000 }, () => {
  let sim: KubeSim;
  let dir: string;
  const daemons: DaemonHandle[] = [];
  const ingress = (name: string) => ((sim.get('v1', 'Service', name, 'default') as { status?: { loadBalancer?: { ingress?: { ip: string }[] } } } | undefined)?.status?.loadBalancer?.ingress ?? []).map((i) => i.ip).join(',');
  const patchAnnotations = (name: string, annotations: Record<string, string | null>) => sim.patch('v1', 'Service', name, 'default', { metadata: { annotations } });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ipvs-lb-facts-'));
    sim = await KubeSim.start();
    const kubeconfig = await sim.writeKubeconfig(join(dir, 'kubeconfig'));
    sampleCluster(sim);
    sim.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ipvs-lb' } });
    daemons.push(await startDaemon({ name: 'lb1', dir: join(dir, 'lb1'), kubeconfig }));
    await eventually('lb1 allocates', async () => ((await daemons[0]!.api<{ ready: boolean }>('/readyz')).body.ready ? true : undefined));
    daemons.push(await startDaemon({ name: 'lb2', dir: join(dir, 'lb2'), kubeconfig }));
  });
  after(async () => {
    for (const d of daemons) await d.stop('SIGKILL');
    await sim.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const agree = (what: string, want: string[]) => eventually(what, async () => {
    const [a, b] = await Promise.all(daemons.map(rows));
    return JSON.stringify(a) === JSON.stringify(want) && JSON.stringify(b) === JSON.stringify(want) ? true : undefined;
  }, 30_000).catch(async (err: Error) => {
    throw new Error(`${err.message}\nwant ${JSON.stringify(want)}\nlb1  ${JSON.stringify(await rows(daemons[0]!))}\nlb2  ${JSON.stringify(await rows(daemons[1]!))}`);
  });

  it('a sole holder that drops its key: both ledgers record it, and a Service with that key gets an address of its own', async () => {
    sim.create(svc('a', [80], 'k'));
    await eventually('a gets an address', () => ingress('a') || undefined);
    const a = ingress('a');
    await agree('both ledgers hold a with key k', [`a=${a} key=k ports=TCP/80`]);
    patchAnnotations('a', { [SHARE]: null });
    await agree('both ledgers record that a dropped its key', [`a=${a} key=- ports=TCP/80`]);
    sim.create(svc('b', [443], 'k'));
    await eventually('b gets an address', () => ingress('b') || undefined);
    assert.notEqual(ingress('b'), a, 'b must not share with a, which no longer allows sharing');
  });

  it('a sharer that changes its key moves, and no host fails a pass on the way', async () => {
    sim.create(svc('c', [8080], 'k'));
    await eventually('c joins b', () => (ingress('c') && ingress('c') === ingress('b') ? true : undefined));
    const shared = ingress('b');
    patchAnnotations('c', { [SHARE]: 'k2' });
    await eventually('c moves to an address of its own', () => (ingress('c') && ingress('c') !== shared ? true : undefined));
    await agree('both ledgers follow', [
      `a=${ingress('a')} key=- ports=TCP/80`, `b=${shared} key=k ports=TCP/443`, `c=${ingress('c')} key=k2 ports=TCP/8080`,
    ].sort());
    for (const d of daemons) assert.doesNotMatch(d.log(), /allocation pass failed/, `${d.name} failed a pass`);
  });
});
