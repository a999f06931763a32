// @kubernetes/client-node 1.4.0 informers against the simulator: they resume after a dropped watch without
// relisting, relist after 410 Gone, and come back after a restart, given what every consumer of this
// library must do (its informer stops for good on an error): restart it from the 'error' handler.
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CoreV1Api, makeInformer, type Informer, type V1Service } from '@kubernetes/client-node';
import { KubeSim } from '../../lab/kube-sim/index.js';
import { waitFor } from '../../lab/kube-sim/testing.js';

const svc = (name: string, labels: Record<string, string> = {}) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'default', labels },
  spec: { type: 'LoadBalancer', ports: [{ port: 80 }] },
});

interface Tracked {
  informer: Informer<V1Service>;
  names: () => string[];
  events: string[];
  errors: number;
  stop: () => Promise<void>;
}

/** An informer over default/services that restarts itself after errors, as the daemon's watcher must. */
function track(sim: KubeSim, restartDelayMs = 50): Tracked {
  const kc = sim.kubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const informer = makeInformer(kc, '/api/v1/namespaces/default/services', () => core.listNamespacedService({ namespace: 'default' }));
  const t: Tracked = {
    informer,
    names: () => informer.list('default').map((s) => s.metadata!.name!).sort(),
    events: [],
    errors: 0,
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      await informer.stop();
    },
  };
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  informer.on('add', (o) => t.events.push(`add ${o.metadata!.name}`));
  informer.on('update', (o) => t.events.push(`update ${o.metadata!.name}`));
  informer.on('delete', (o) => t.events.push(`delete ${o.metadata!.name}`));
  informer.on('error', () => {
    t.errors++;
    if (!stopped) timer = setTimeout(() => void informer.start().catch(() => {}), restartDelayMs);
  });
  return t;
}

describe('client-node informers against kube-sim', () => {
  let sim: KubeSim;
  let tracked: Tracked | undefined;

  before(async () => {
    sim = await KubeSim.start();
  });
  afterEach(async () => {
    await tracked?.stop();
    tracked = undefined;
    for (const s of sim.list('v1', 'Service', 'default')) {
      const name = (s.metadata as { name: string }).name;
      if (name !== 'kubernetes') sim.delete('v1', 'Service', name, 'default');
    }
    sim.clearFaults();
  });
  after(async () => {
    await sim?.stop();
  });

  it('resumes a dropped watch from its resourceVersion without a new list', async () => {
    sim.create(svc('a'));
    tracked = track(sim);
    await tracked.informer.start();
    await waitFor('initial sync', () => tracked!.names().includes('a'));
    await waitFor('the watch to open', () => sim.activeWatches === 1);
    sim.resetCounts();

    assert.equal(sim.dropWatches(), 1);
    // Changes made while the informer reconnects reach it from the server's history.
    sim.create(svc('b'));
    sim.delete('v1', 'Service', 'a', 'default');
    await waitFor('b added and a deleted', () => tracked!.names().join() === 'b,kubernetes');
    assert.equal(sim.requestCounts()['list services'], undefined, 'no relist');
    assert.equal(sim.requestCounts()['watch services'], 1, 'one new watch');
    assert.equal(tracked.errors, 0);
    assert.deepEqual(tracked.events.slice(-2), ['add b', 'delete a']);
  });

  it('also resumes after the connection is reset, once restarted on its error', async () => {
    tracked = track(sim);
    await tracked.informer.start();
    await waitFor('the watch to open', () => sim.activeWatches === 1);
    sim.resetCounts();
    sim.dropWatches({ abrupt: true });
    sim.create(svc('c'));
    await waitFor('c added', () => tracked!.names().includes('c'));
    assert.ok(tracked.errors >= 1, 'a reset connection is an error for client-node');
    assert.equal(sim.requestCounts()['list services'], undefined, 'the restarted informer resumed without a list');
  });

  it('relists after 410 Gone and reports what changed meanwhile, deletions included', async () => {
    sim.create(svc('old'));
    tracked = track(sim);
    await tracked.informer.start();
    await waitFor('initial sync', () => tracked!.names().includes('old'));
    await waitFor('the watch to open', () => sim.activeWatches === 1);
    sim.resetCounts();

    // The informer's resourceVersion falls out of the history before it can reconnect.
    sim.dropWatches();
    sim.delete('v1', 'Service', 'old', 'default');
    sim.create(svc('new'));
    sim.compact();
    await waitFor('relisted state', () => tracked!.names().join() === 'kubernetes,new');
    assert.equal(sim.requestCounts()['list services'], 1, 'exactly one relist');
    assert.ok(tracked.events.includes('delete old'), 'the relist reports the deletion it missed');
    assert.equal(tracked.errors, 0, 'a 410 in the stream is not an error for the informer');
  });

  it('comes back after a restart that keeps the data, and after one that wipes it', async () => {
    sim.create(svc('kept'));
    tracked = track(sim);
    await tracked.informer.start();
    await waitFor('initial sync', () => tracked!.names().includes('kept'));

    const restarted = sim.restart({ downMs: 300 });
    await waitFor('the informer to notice the outage', () => tracked!.errors > 0);
    await restarted;
    sim.create(svc('after-restart'));
    await waitFor('a change after the restart', () => tracked!.names().includes('after-restart'));
    assert.deepEqual(tracked.names(), ['after-restart', 'kept', 'kubernetes']);

    const port = sim.port;
    await sim.restart({ wipe: true, downMs: 100 });
    assert.equal(sim.port, port, 'same port');
    await waitFor('the wiped state', () => tracked!.names().join() === 'kubernetes');
    assert.ok(tracked.events.includes('delete kept'));
  });

  it('sees errors injected on list (500) and recovers when they stop', async () => {
    sim.failNext(2, { status: 500, verbs: ['list'], resources: ['services'] });
    tracked = track(sim, 20);
    await tracked.informer.start();
    await waitFor('sync after two failed lists', () => tracked!.names().includes('kubernetes'));
    assert.equal(tracked.errors, 2);
  });
});
