// API semantics of the simulator as @kubernetes/client-node 1.4.0 sees them: status subresource, optimistic
// concurrency, authentication and authorization, selectors, the three patch types, Service defaults and
// validation, pagination, watch start points and bookmarks, injected failures, and the cluster helpers.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import {
  AuthorizationV1Api,
  CoordinationV1Api,
  CoreV1Api,
  DiscoveryV1Api,
  EventsV1Api,
  PatchStrategy,
  setHeaderOptions,
  Watch,
  type V1Service,
} from '@kubernetes/client-node';
import { Cluster, KubeSim } from '../../lab/kube-sim/index.js';
import { statusOf, waitFor } from '../../lab/kube-sim/testing.js';

const lb = (name: string, labels: Record<string, string> = {}, spec: Partial<NonNullable<V1Service['spec']>> = {}): V1Service => ({
  metadata: { name, labels },
  spec: { type: 'LoadBalancer', ports: [{ name: 'web', port: 80 }], selector: { app: name }, ...spec },
});

async function rejectsWith(p: Promise<unknown>, code: number, reason?: string) {
  try {
    await p;
  } catch (err) {
    const s = statusOf(err);
    assert.equal(s.code, code, s.message);
    if (reason) assert.equal(s.reason, reason, s.message);
    return s;
  }
  assert.fail(`expected HTTP ${code}`);
}

describe('kube-sim API semantics (client-node)', () => {
  let sim: KubeSim;
  let core: CoreV1Api;

  before(async () => {
    sim = await KubeSim.start({ bookmarkIntervalMs: 100 });
    core = sim.kubeConfig().makeApiClient(CoreV1Api);
  });
  after(async () => {
    await sim?.stop();
  });

  it('fills Service defaults and allocations like kube-apiserver', async () => {
    const s = await core.createNamespacedService({ namespace: 'default', body: lb('defaults', {}, { externalTrafficPolicy: 'Local' }) });
    const spec = s.spec!;
    assert.match(spec.clusterIP!, /^203\.0\.113\./);
    assert.deepEqual(spec.clusterIPs, [spec.clusterIP]);
    assert.deepEqual(spec.ipFamilies, ['IPv4']);
    assert.equal(spec.ipFamilyPolicy, 'SingleStack');
    assert.equal(spec.sessionAffinity, 'None');
    assert.equal(spec.internalTrafficPolicy, 'Cluster');
    assert.equal(spec.allocateLoadBalancerNodePorts, true);
    assert.equal(spec.ports![0]!.protocol, 'TCP');
    assert.equal(spec.ports![0]!.targetPort, 80);
    const np = spec.ports![0]!.nodePort!;
    assert.ok(np >= 30000 && np <= 32767);
    assert.ok(spec.healthCheckNodePort! >= 30000 && spec.healthCheckNodePort !== np, 'Local gets a healthCheckNodePort');
    assert.ok(s.metadata!.uid && s.metadata!.creationTimestamp && s.metadata!.resourceVersion);
    assert.deepEqual(JSON.parse(JSON.stringify(s.status)), { loadBalancer: {} });

    const cluster = await core.createNamespacedService({ namespace: 'default', body: lb('plain', {}, { externalTrafficPolicy: 'Cluster' }) });
    assert.equal(cluster.spec!.healthCheckNodePort, undefined, 'no healthCheckNodePort for Cluster');

    // Switching to Local allocates one; switching back releases it.
    const local = await core.patchNamespacedService({ name: 'plain', namespace: 'default', body: { spec: { externalTrafficPolicy: 'Local' } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    assert.ok(local.spec!.healthCheckNodePort);
    const back = await core.patchNamespacedService({ name: 'plain', namespace: 'default', body: { spec: { externalTrafficPolicy: 'Cluster' } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    assert.equal(back.spec!.healthCheckNodePort, undefined);
    assert.equal(back.spec!.ports![0]!.nodePort, cluster.spec!.ports![0]!.nodePort, 'nodePort kept across updates');
  });

  it('answers 422 Invalid naming every bad field, and allocates nothing for a refused Service', async () => {
    const before = sim.list('v1', 'Service', 'default').length;
    const s = await rejectsWith(
      core.createNamespacedService({ namespace: 'default', body: lb('bad', {}, { ports: [{ port: 0 }, { port: 80, protocol: 'ICMP' }], sessionAffinity: 'Sticky' }) }),
      422,
      'Invalid',
    );
    const fields = s.details!.causes!.map((c) => c.field).sort();
    assert.deepEqual(fields, ['spec.ports[0].name', 'spec.ports[0].port', 'spec.ports[0].targetPort', 'spec.ports[1].name', 'spec.ports[1].protocol', 'spec.sessionAffinity']);
    assert.match(s.message!, /^Service "bad" is invalid: \[/);
    assert.equal(sim.list('v1', 'Service', 'default').length, before);

    const taken = sim.get('v1', 'Service', 'defaults', 'default')!.spec as { ports: { nodePort: number }[]; clusterIP: string };
    const dup = await rejectsWith(core.createNamespacedService({ namespace: 'default', body: lb('dup', {}, { clusterIP: taken.clusterIP, ports: [{ port: 80, nodePort: taken.ports[0]!.nodePort }] }) }), 422);
    assert.deepEqual(dup.details!.causes!.map((c) => [c.field, /already allocated/.test(c.message)]), [['spec.ports[0].nodePort', true], ['spec.clusterIP', true]]);
    await rejectsWith(core.createNamespacedService({ namespace: 'default', body: lb('defaults') }), 409, 'AlreadyExists');
    await rejectsWith(core.createNamespacedService({ namespace: 'nowhere', body: lb('x') }), 404, 'NotFound');
  });

  it('changes only status through /status, and ignores status on the main resource', async () => {
    await core.createNamespacedService({ namespace: 'default', body: lb('status') });
    const patched = await core.patchNamespacedServiceStatus(
      { name: 'status', namespace: 'default', body: { spec: { type: 'ClusterIP' }, status: { loadBalancer: { ingress: [{ ip: '192.0.2.20' }] } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    assert.deepEqual(JSON.parse(JSON.stringify(patched.status!.loadBalancer!.ingress)), [{ ip: '192.0.2.20', ipMode: 'VIP' }]);
    assert.equal(patched.spec!.type, 'LoadBalancer', 'spec untouched by a status patch');
    const main = await core.patchNamespacedService(
      { name: 'status', namespace: 'default', body: { metadata: { labels: { x: 'y' } }, status: { loadBalancer: { ingress: [{ ip: '192.0.2.99' }] } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    assert.equal(main.metadata!.labels!.x, 'y');
    assert.equal(main.status!.loadBalancer!.ingress![0]!.ip, '192.0.2.20', 'status untouched by a main-resource patch');
    const bad = await rejectsWith(
      core.patchNamespacedServiceStatus({ name: 'status', namespace: 'default', body: { status: { loadBalancer: { ingress: [{ ip: 'not-an-ip' }] } } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch)),
      422,
    );
    assert.equal(bad.details!.causes![0]!.field, 'status.loadBalancer.ingress[0].ip');
  });

  it('refuses a stale update with 409 Conflict, and does not bump resourceVersion for a no-op', async () => {
    const s = await core.readNamespacedService({ name: 'status', namespace: 'default' });
    const same = await core.replaceNamespacedService({ name: 'status', namespace: 'default', body: s });
    assert.equal(same.metadata!.resourceVersion, s.metadata!.resourceVersion, 'no-op update');
    s.metadata!.labels = { ...s.metadata!.labels, v: '2' };
    const fresh = await core.replaceNamespacedService({ name: 'status', namespace: 'default', body: s });
    assert.ok(Number(fresh.metadata!.resourceVersion) > Number(s.metadata!.resourceVersion));
    s.metadata!.labels = { v: '3' };
    const c = await rejectsWith(core.replaceNamespacedService({ name: 'status', namespace: 'default', body: s }), 409, 'Conflict');
    assert.match(c.message!, /the object has been modified; please apply your changes to the latest version and try again/);
    await rejectsWith(
      core.patchNamespacedService({ name: 'status', namespace: 'default', body: { metadata: { resourceVersion: s.metadata!.resourceVersion, labels: { v: '4' } } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch)),
      409,
      'Conflict',
    );
  });

  it('answers 401 without the token or with a wrong one', async () => {
    const kc = sim.kubeConfig();
    kc.users[0] = { ...kc.users[0]!, token: 'wrong' };
    // client-node keeps no body for a 401, so the Status itself is checked on a raw request without a token.
    await rejectsWith(kc.makeApiClient(CoreV1Api).listNamespacedService({ namespace: 'default' }), 401);
    const raw = await new Promise<{ code: number; body: string }>((resolve, reject) => {
      https
        .get(`${sim.url}/api/v1/services`, { ca: sim.caPem }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ code: res.statusCode ?? 0, body }));
        })
        .on('error', reject);
    });
    assert.equal(raw.code, 401);
    assert.deepEqual(JSON.parse(raw.body), { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 });
  });

  it('filters lists by label and field selectors and refuses bad ones with 400', async () => {
    await core.createNamespacedService({ namespace: 'default', body: lb('web-1', { tier: 'web', track: 'stable' }) });
    await core.createNamespacedService({ namespace: 'default', body: lb('web-2', { tier: 'web', track: 'canary' }) });
    await core.createNamespacedService({ namespace: 'default', body: lb('api-1', { tier: 'api' }) });
    await core.createNamespacedService({ namespace: 'default', body: { metadata: { name: 'internal', labels: { tier: 'web' } }, spec: { ports: [{ port: 80 }] } } });
    const names = async (labelSelector?: string, fieldSelector?: string) =>
      (await core.listNamespacedService({ namespace: 'default', labelSelector, fieldSelector })).items.map((s) => s.metadata!.name).sort();
    assert.deepEqual(await names('tier=web'), ['internal', 'web-1', 'web-2']);
    assert.deepEqual(await names('tier==web,track!=canary'), ['internal', 'web-1']);
    assert.deepEqual(await names('tier in (web,api),track'), ['web-1', 'web-2']);
    assert.deepEqual(await names('tier notin (web),tier'), ['api-1']);
    assert.deepEqual(await names('!track,tier'), ['api-1', 'internal']);
    assert.deepEqual(await names('tier=web', 'spec.type=LoadBalancer'), ['web-1', 'web-2']);
    assert.deepEqual(await names('tier=web', 'spec.type!=LoadBalancer,metadata.namespace=default'), ['internal']);
    assert.deepEqual(await names(undefined, 'metadata.name=api-1'), ['api-1']);
    await rejectsWith(core.listNamespacedService({ namespace: 'default', labelSelector: 'tier in (web' }), 400, 'BadRequest');
    const f = await rejectsWith(core.listNamespacedService({ namespace: 'default', fieldSelector: 'spec.selector=x' }), 400, 'BadRequest');
    assert.match(f.message!, /field label not supported: spec\.selector/);
  });

  it('applies JSON patch (with test) and strategic merge patch (ports by port, $patch: delete)', async () => {
    const jp = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch);
    const s = await core.patchNamespacedService(
      { name: 'web-1', namespace: 'default', body: [{ op: 'test', path: '/metadata/labels/tier', value: 'web' }, { op: 'add', path: '/metadata/labels/owner', value: 'team-a' }, { op: 'replace', path: '/spec/ports/0/name', value: 'http' }] },
      jp,
    );
    assert.equal(s.metadata!.labels!.owner, 'team-a');
    assert.equal(s.spec!.ports![0]!.name, 'http');
    const failed = await rejectsWith(core.patchNamespacedService({ name: 'web-1', namespace: 'default', body: [{ op: 'test', path: '/metadata/labels/tier', value: 'api' }, { op: 'remove', path: '/metadata/labels' }] }, jp), 422, 'Invalid');
    assert.match(failed.message!, /test failed/);
    assert.equal((await core.readNamespacedService({ name: 'web-1', namespace: 'default' })).metadata!.labels!.tier, 'web', 'nothing half-applied');
    await rejectsWith(core.patchNamespacedService({ name: 'web-1', namespace: 'default', body: [{ op: 'jump', path: '/x' }] }, jp), 400, 'BadRequest');

    const smp = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);
    const nodePort = s.spec!.ports![0]!.nodePort;
    const two = await core.patchNamespacedService({ name: 'web-1', namespace: 'default', body: { spec: { ports: [{ name: 'https', port: 443 }] } } }, smp);
    assert.deepEqual(two.spec!.ports!.map((p) => [p.name, p.port]), [['http', 80], ['https', 443]], 'merged by port, not replaced');
    assert.equal(two.spec!.ports![0]!.nodePort, nodePort);
    const one = await core.patchNamespacedService({ name: 'web-1', namespace: 'default', body: { spec: { ports: [{ port: 80, $patch: 'delete' }] } } }, smp);
    assert.deepEqual(one.spec!.ports!.map((p) => p.port), [443]);
    // Ingress is atomic: a strategic patch replaces the list.
    const st1 = await core.patchNamespacedServiceStatus({ name: 'web-1', namespace: 'default', body: { status: { loadBalancer: { ingress: [{ ip: '192.0.2.30' }, { ip: '2001:db8::30' }] } } } }, smp);
    assert.equal(st1.status!.loadBalancer!.ingress!.length, 2);
    const st2 = await core.patchNamespacedServiceStatus({ name: 'web-1', namespace: 'default', body: { status: { loadBalancer: { ingress: [{ ip: '192.0.2.31' }] } } } }, smp);
    assert.deepEqual(st2.status!.loadBalancer!.ingress!.map((i) => i.ip), ['192.0.2.31']);
  });

  it('pages lists with limit and continue over a consistent snapshot, and expires old continue tokens', async () => {
    const all = (await core.listNamespacedService({ namespace: 'default' })).items.map((s) => s.metadata!.name);
    const page1 = await core.listNamespacedService({ namespace: 'default', limit: 3 });
    assert.equal(page1.items.length, 3);
    assert.ok(page1.metadata!._continue);
    assert.equal(page1.metadata!.remainingItemCount, all.length - 3);
    // A Service created between pages is not in this list: pages read the first page's revision.
    await core.createNamespacedService({ namespace: 'default', body: lb('zzz-late') });
    const rest: string[] = [];
    let cont: string | undefined = page1.metadata!._continue;
    while (cont) {
      const p = await core.listNamespacedService({ namespace: 'default', limit: 3, _continue: cont });
      assert.equal(p.metadata!.resourceVersion, page1.metadata!.resourceVersion);
      rest.push(...p.items.map((s) => s.metadata!.name!));
      cont = p.metadata!._continue;
    }
    assert.deepEqual([...page1.items.map((s) => s.metadata!.name), ...rest], all);
    sim.compact();
    await rejectsWith(core.listNamespacedService({ namespace: 'default', limit: 3, _continue: page1.metadata!._continue! }), 410, 'Expired');
  });

  it('starts watches at "0" with the current state, resumes from N, sends BOOKMARKs, and 410s in-stream', async () => {
    const kc = sim.kubeConfig();
    const watch = new Watch(kc);
    const collect = async (params: Record<string, string | boolean>, until: (evs: { type: string; obj: { metadata?: { name?: string; resourceVersion?: string }; code?: number; reason?: string } }[]) => boolean) => {
      const evs: { type: string; obj: { metadata?: { name?: string; resourceVersion?: string }; code?: number; reason?: string } }[] = [];
      let ended = false;
      const ctl = await watch.watch('/api/v1/namespaces/default/services', params, (type, obj: (typeof evs)[number]['obj']) => evs.push({ type, obj }), () => (ended = true));
      await waitFor('watch events', () => until(evs) || ended);
      ctl.abort();
      return { evs, ended };
    };
    const count = sim.list('v1', 'Service', 'default').length;
    const zero = await collect({ resourceVersion: '0' }, (e) => e.length >= count);
    assert.equal(zero.evs.length, count);
    assert.ok(zero.evs.every((e) => e.type === 'ADDED'));

    const rv = (await core.listNamespacedService({ namespace: 'default' })).metadata!.resourceVersion!;
    await core.deleteNamespacedService({ name: 'zzz-late', namespace: 'default' });
    await core.patchNamespacedService({ name: 'web-2', namespace: 'default', body: { metadata: { labels: { seen: 'yes' } } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    const resumed = await collect({ resourceVersion: rv, allowWatchBookmarks: true }, (e) => e.some((x) => x.type === 'BOOKMARK'));
    assert.deepEqual(resumed.evs.filter((e) => e.type !== 'BOOKMARK').map((e) => `${e.type} ${e.obj.metadata!.name}`), ['DELETED zzz-late', 'MODIFIED web-2']);
    const bookmark = resumed.evs.find((e) => e.type === 'BOOKMARK')!;
    assert.equal(bookmark.obj.metadata!.resourceVersion, String(sim.store.revision));

    // Label selectors apply to watches, with objects entering and leaving the selection.
    const selEvents: string[] = [];
    const selCtl = await watch.watch('/api/v1/namespaces/default/services', { labelSelector: 'seen=yes', resourceVersion: String(sim.store.revision) }, (type, obj: { metadata: { name: string } }) => selEvents.push(`${type} ${obj.metadata.name}`), () => {});
    await waitFor('selector watch open', () => sim.activeWatches >= 1);
    const mp = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
    await core.patchNamespacedService({ name: 'web-1', namespace: 'default', body: { metadata: { labels: { seen: 'yes' } } } }, mp);
    await core.patchNamespacedService({ name: 'web-2', namespace: 'default', body: { metadata: { labels: { seen: null } } } }, mp);
    await waitFor('selector transitions', () => selEvents.length >= 2);
    selCtl.abort();
    assert.deepEqual(selEvents, ['ADDED web-1', 'DELETED web-2']);

    const timed = await collect({ timeoutSeconds: '1', resourceVersion: String(sim.store.revision) }, () => false);
    assert.equal(timed.ended, true, 'timeoutSeconds ends the stream cleanly');

    sim.compact();
    const expired = await collect({ resourceVersion: rv }, (e) => e.some((x) => x.type === 'ERROR'));
    const err = expired.evs.find((e) => e.type === 'ERROR')!;
    assert.equal(err.obj.code, 410);
    assert.equal(err.obj.reason, 'Expired');
  });

  it('makes injected 429 and 500 visible to the client, with Retry-After, then serves again', async () => {
    sim.failNext(1, { status: 429, retryAfterSeconds: 3 });
    try {
      await core.listNamespacedService({ namespace: 'default' });
      assert.fail('expected 429');
    } catch (err) {
      const s = statusOf(err);
      assert.equal(s.code, 429);
      assert.equal(s.reason, 'TooManyRequests');
      assert.equal(s.details!.retryAfterSeconds, 3);
      assert.equal((err as { headers: Record<string, string> }).headers['retry-after'], '3');
    }
    sim.failNext(1, { status: 500, verbs: ['patch'], resources: ['services/status'] });
    await core.listNamespacedService({ namespace: 'default' });
    await rejectsWith(
      core.patchNamespacedServiceStatus({ name: 'web-1', namespace: 'default', body: { status: {} } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch)),
      500,
      'InternalError',
    );
    sim.failFor(60_000, { status: 503 });
    await rejectsWith(core.listNode(), 503, 'ServiceUnavailable');
    sim.clearFaults();
    await core.listNode();
    sim.setDelay(50);
    const t0 = Date.now();
    await core.listNode();
    assert.ok(Date.now() - t0 >= 50, 'the delay applies');
    sim.setDelay(0);
  });

  it('enforces RBAC rules with 403 and answers SelfSubjectAccessReviews from the same rules', async () => {
    const kc = sim.kubeConfig();
    const leases = kc.makeApiClient(CoordinationV1Api);
    const authz = kc.makeApiClient(AuthorizationV1Api);
    const lease = { metadata: { name: 'ipvs-lb', namespace: 'kube-system' }, spec: { holderIdentity: 'lb-1', leaseDurationSeconds: 15 } };
    sim.setRules([
      { verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['services', 'nodes'] },
      { verbs: ['patch', 'update'], apiGroups: [''], resources: ['services/status'] },
      { verbs: ['get', 'create', 'update'], apiGroups: ['coordination.k8s.io'], resources: ['leases'], namespaces: ['ipvs-lb'] },
    ]);
    try {
      const denied = await rejectsWith(leases.createNamespacedLease({ namespace: 'kube-system', body: lease }), 403, 'Forbidden');
      assert.match(denied.message!, /cannot create resource "leases" in API group "coordination.k8s.io" in the namespace "kube-system"/);
      await rejectsWith(core.deleteNamespacedService({ name: 'web-1', namespace: 'default' }), 403, 'Forbidden');
      await core.listNamespacedService({ namespace: 'default' });
      const review = (verb: string, resource: string, namespace: string, group = '') =>
        authz.createSelfSubjectAccessReview({ body: { spec: { resourceAttributes: { verb, resource, namespace, group } } } }).then((r) => r.status!.allowed);
      assert.equal(await review('create', 'leases', 'ipvs-lb', 'coordination.k8s.io'), true);
      assert.equal(await review('create', 'leases', 'kube-system', 'coordination.k8s.io'), false);
      assert.equal(await review('watch', 'services', 'default'), true);
      assert.equal(await review('create', 'events', 'default'), false);
    } finally {
      sim.setRules([{ verbs: ['*'], apiGroups: ['*'], resources: ['*'] }]);
    }
    const created = await leases.createNamespacedLease({ namespace: 'kube-system', body: lease });
    assert.equal(created.spec!.holderIdentity, 'lb-1');
  });

  it('validates SelfSubjectAccessReviews like the real server: exactly one of resource and non-resource attributes', async () => {
    const authz = sim.kubeConfig().makeApiClient(AuthorizationV1Api);
    const bad = await rejectsWith(authz.createSelfSubjectAccessReview({ body: { spec: {} } }), 422, 'Invalid');
    assert.match(bad.message!, /spec\.resourceAttributes: Invalid value: "null": exactly one of nonResourceAttributes or resourceAttributes must be specified/);
    await rejectsWith(authz.createSelfSubjectAccessReview({ body: { spec: { resourceAttributes: { verb: 'get', resource: 'services' }, nonResourceAttributes: { verb: 'get', path: '/version' } } } }), 422, 'Invalid');
    const version = await authz.createSelfSubjectAccessReview({ body: { spec: { nonResourceAttributes: { verb: 'get', path: '/version' } } } });
    assert.equal(version.status!.allowed, true);
    const post = await authz.createSelfSubjectAccessReview({ body: { spec: { nonResourceAttributes: { verb: 'post', path: '/version' } } } });
    assert.equal(post.status!.allowed, false);
  });

  it('keeps core/v1 and events.k8s.io/v1 Events in one storage, converted per version', async () => {
    const ev = sim.kubeConfig().makeApiClient(EventsV1Api);
    await ev.createNamespacedEvent({
      namespace: 'default',
      body: {
        metadata: { name: 'web-1.1' },
        eventTime: new Date(),
        reportingController: 'ipvs-lb.io/ipvs-lb',
        reportingInstance: 'lb-1',
        action: 'Allocate',
        reason: 'IPAllocated',
        note: 'allocated 192.0.2.31',
        type: 'Normal',
        regarding: { kind: 'Service', namespace: 'default', name: 'web-1' },
      },
    });
    const core1 = (await core.listNamespacedEvent({ namespace: 'default', fieldSelector: 'involvedObject.name=web-1' })).items;
    assert.equal(core1.length, 1);
    assert.equal(core1[0]!.message, 'allocated 192.0.2.31');
    assert.equal(core1[0]!.reportingComponent, 'ipvs-lb.io/ipvs-lb');
  });

  it('places nodes and endpoints with the cluster helpers, visible to clients and selectors', async () => {
    const c = new Cluster(sim);
    c.addNode('node-a', { internalIP: '198.51.100.21' });
    c.addNode('node-b', { internalIP: '198.51.100.22', ready: false, labels: { 'node.kubernetes.io/exclude-from-external-load-balancers': '' } });
    c.placeEndpoints('default', 'web-1', [{ node: 'node-a' }, { node: 'node-b', ready: false }]);
    const slices = await sim.kubeConfig().makeApiClient(DiscoveryV1Api).listNamespacedEndpointSlice({ namespace: 'default', labelSelector: 'kubernetes.io/service-name=web-1' });
    assert.equal(slices.items.length, 1);
    const eps = slices.items[0]!.endpoints;
    assert.deepEqual(eps.map((e) => [e.nodeName, e.conditions!.ready]), [['node-a', true], ['node-b', false]]);
    assert.deepEqual(slices.items[0]!.ports!.map((p) => p.port), [443]);
    const nodes = await core.listNode({ labelSelector: '!node.kubernetes.io/exclude-from-external-load-balancers' });
    assert.deepEqual(nodes.items.map((n) => n.metadata!.name), ['node-a']);
    c.setNodeReady('node-b', true);
    const b = await core.readNode({ name: 'node-b' });
    assert.equal(b.status!.conditions!.find((x) => x.type === 'Ready')!.status, 'True');
    assert.deepEqual(b.status!.addresses!.find((a) => a.type === 'InternalIP')!.address, '198.51.100.22');
    c.placeEndpoints('default', 'web-1', [{ node: 'node-b' }]);
    const after = sim.list('discovery.k8s.io/v1', 'EndpointSlice', 'default', { labelSelector: 'kubernetes.io/service-name=web-1' });
    assert.equal(after.length, 1, 'placing again replaces the slice');
  });

  it('counts requests per verb and resource', async () => {
    sim.resetCounts();
    await core.listNamespacedService({ namespace: 'default' });
    await core.readNamespacedService({ name: 'web-1', namespace: 'default' });
    await core.patchNamespacedServiceStatus({ name: 'web-1', namespace: 'default', body: { status: {} } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    assert.deepEqual(sim.requestCounts(), { 'get services': 1, 'list services': 1, 'patch services/status': 1 });
    assert.equal(sim.totalRequests(), 3);
  });

  it('can be steered through the admin API under /kube-sim/v1/ with the same token', async () => {
    const admin = (method: string, path: string, body?: unknown, token: string | undefined = sim.token) =>
      new Promise<{ code: number; body: Record<string, unknown> }>((resolve, reject) => {
        const data = body === undefined ? undefined : JSON.stringify(body);
        const req = https.request(`${sim.url}/kube-sim/v1/${path}`, { method, ca: sim.caPem, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(data ? { 'content-type': 'application/json' } : {}) } }, (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve({ code: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
        });
        req.on('error', reject);
        req.end(data);
      });
    assert.equal((await admin('GET', 'requests', undefined, 'wrong')).code, 401);
    assert.equal((await admin('POST', 'faults', { status: 503, count: 1, resources: ['nodes'] })).code, 200);
    await rejectsWith(core.listNode(), 503, 'ServiceUnavailable');
    await core.listNode();
    const bad = await admin('POST', 'faults', { status: 418, count: 1 });
    assert.equal(bad.code, 400);
    assert.match(String(bad.body.message), /status: must be 429, 500 or 503/);

    assert.equal((await admin('PUT', 'nodes/node-a/ready', { ready: false })).code, 200);
    const a = await core.readNode({ name: 'node-a' });
    assert.equal(a.status!.conditions!.find((c) => c.type === 'Ready')!.status, 'False');
    assert.equal((await admin('PUT', 'nodes/nope/ready', { ready: true })).code, 404);
    const placed = await admin('PUT', 'endpoints/default/web-1', { endpoints: [{ node: 'node-a' }, { node: 'node-b', ready: false }] });
    assert.deepEqual(placed.body.slices, ['web-1-ipv4']);

    sim.resetCounts();
    await core.listNode();
    const counts = await admin('GET', 'requests');
    assert.deepEqual(counts.body.byVerbAndResource, { 'list nodes': 1 });

    const port = sim.port;
    assert.equal((await admin('POST', 'restart', { downMs: 50 })).code, 200);
    await waitFor('the restart to go down', () => !sim.up, 5_000, 5).catch(() => {});
    await waitFor('the restart to come back', () => sim.up);
    assert.equal(sim.port, port);
    await core.listNode();
  });
});
