// Found by the soak (docs/soak.md): both ledgers must hold what the Services show, with the facts of the
// current request, whatever order things happen in. What a ledger records about an allocation (sharing key,
// ports) is what the next Service asking to share is judged against, on whichever host allocates then; and
// a Service whose annotation went bad keeps its address, so every host must keep holding (and serving) it.
// Two real daemons (real SQLite, real client-node) against the API simulator.
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

describe('both ledgers follow the Services', { timeout: 240_000 }, () => {
  let sim: KubeSim;
  let dir: string;
  let kubeconfig: string;
  const daemons: DaemonHandle[] = [];
  const restart = async (i: 0 | 1) => {
    await daemons[i]!.stop('SIGTERM');
    daemons[i] = await startDaemon({ name: `lb${i + 1}`, dir: join(dir, `lb${i + 1}`), kubeconfig });
  };
  const ingress = (name: string) => ((sim.get('v1', 'Service', name, 'default') as { status?: { loadBalancer?: { ingress?: { ip: string }[] } } } | undefined)?.status?.loadBalancer?.ingress ?? []).map((i) => i.ip).join(',');
  const patchAnnotations = (name: string, annotations: Record<string, string | null>) => sim.patch('v1', 'Service', name, 'default', { metadata: { annotations } });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ipvs-lb-facts-'));
    sim = await KubeSim.start();
    kubeconfig = await sim.writeKubeconfig(join(dir, 'kubeconfig'));
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

  it('a Service whose annotation goes bad keeps its address in both ledgers, across restarts of the follower and the allocator', async () => {
    // The follower is down while the Service gets its address and its annotation goes bad, so it meets the
    // Service only as unparseable (in the soak: both steps during an API outage).
    await daemons[1]!.stop('SIGTERM');
    sim.create(svc('d', [5000]));
    await eventually('d gets an address', () => ingress('d') || undefined);
    const d = ingress('d');
    patchAnnotations('d', { 'ipvs-lb.io/load-balancer-ips': 'not-an-ip' });
    daemons[1] = await startDaemon({ name: 'lb2', dir: join(dir, 'lb2'), kubeconfig });
    const want = [`a=${ingress('a')} key=- ports=TCP/80`, `b=${ingress('b')} key=k ports=TCP/443`, `c=${ingress('c')} key=k2 ports=TCP/8080`, `d=${d} key=- ports=TCP/5000`].sort();
    await agree('the follower holds d as the allocator does', want);
    // A start-up must not take it for a Service that is gone: its status still shows the address.
    await restart(0);
    await restart(1);
    await eventually('both daemons up', async () => ((await Promise.all(daemons.map((x) => x.api<{ ready: boolean }>('/readyz')))).every((r) => r.body.ready) ? true : undefined));
    await agree('both ledgers still hold d after restarts', want);
    assert.equal(ingress('d'), d);
    for (const x of daemons) {
      const audit = (await x.api<{ items: { action: string; address: string | null }[] }>('/api/v1/events?limit=1000')).body.items;
      assert.ok(!audit.some((e) => e.address === d && e.action === 'release'), `${x.name} released ${d}: ${JSON.stringify(audit.filter((e) => e.address === d))}`);
    }
  });

  it('a host that was down while a Service moved to the address it asked for follows the move when it starts', async () => {
    // The soak's step: the ledger restarted with the old row (e at its first address), the status showed the
    // new one, and the request (an address the ledger does not hold) was only "pending" on a follower, so
    // nothing looked at e again until the next relist: two minutes serving the old VIP.
    sim.create(svc('e', [7000]));
    await eventually('e gets an address', () => ingress('e') || undefined);
    const first = ingress('e');
    const others = ['a', 'b', 'c', 'd'].map((n) => `${n}=${ingress(n)}`);
    await agree('both ledgers hold e', [...(await rows(daemons[0]!)).filter((r) => !r.startsWith('e=')), `e=${first} key=- ports=TCP/7000`].sort());
    const moved = '192.0.2.200';
    assert.ok(![first, ...others].some((x) => x.endsWith(`=${moved}`) || x === moved), `${moved} is free`);
    await daemons[1]!.stop('SIGTERM');
    patchAnnotations('e', { 'ipvs-lb.io/load-balancer-ips': moved });
    await eventually(`e moves to ${moved}`, () => (ingress('e') === moved ? true : undefined), 60_000);
    daemons[1] = await startDaemon({ name: 'lb2', dir: join(dir, 'lb2'), kubeconfig });
    await eventually('lb2 up', async () => ((await daemons[1]!.api<{ ready: boolean }>('/readyz')).body.ready ? true : undefined));
    const want = [...(await rows(daemons[0]!)).filter((r) => !r.startsWith('e=')), `e=${moved} key=- ports=TCP/7000`].sort();
    await agree('the restarted host holds e where the status shows it', want);
  });

  it('when a holder\'s new ports and a newcomer that wants to share arrive in one pass, the holder keeps its address and the newcomer goes elsewhere', async () => {
    // The soak's step 22 (seed 668103826): during an API outage s-8, on .8 under key k2, added TCP/443 and
    // s-21 was created under k2 with TCP/443. The relist brought both at once; the newcomer was decided
    // first, against the holder's old ports, got .8, and the holder's new ports were then refused: two
    // Services on one VIP and port, and ledgers that disagreed.
    sim.create(svc('g-holder', [9000], 'k3'));
    await eventually('g-holder gets an address', () => ingress('g-holder') || undefined);
    const held = ingress('g-holder');
    await agree('both ledgers hold g-holder', [...(await rows(daemons[0]!)).filter((r) => !r.startsWith('g-holder=')), `g-holder=${held} key=k3 ports=TCP/9000`].sort());
    await sim.goDown();
    sim.patch('v1', 'Service', 'g-holder', 'default', { spec: { ports: [{ name: 'p9000', port: 9000 }, { name: 'p9443', port: 9443 }] } });
    // Named to come first in a list, as s-21 came before s-8.
    sim.create(svc('f-new', [9443], 'k3'));
    await new Promise((r) => setTimeout(r, 500));
    await sim.restart({ compact: true });
    await eventually('f-new gets an address', () => ingress('f-new') || undefined, 60_000);
    assert.equal(ingress('g-holder'), held, 'the holder keeps its address');
    assert.notEqual(ingress('f-new'), held, `f-new must not share ${held}: g-holder serves TCP/9443 there now`);
    const others = (await rows(daemons[0]!)).filter((r) => !r.startsWith('g-holder=') && !r.startsWith('f-new='));
    await agree('both ledgers record the holder\'s new ports and the newcomer elsewhere', [...others, `g-holder=${held} key=k3 ports=TCP/9000,TCP/9443`, `f-new=${ingress('f-new')} key=k3 ports=TCP/9443`].sort());
  });
});
