// End-to-end acceptance: the walkthroughs of shared/seeds as tests, with the real daemon on one LB host (VRRP
// off; the demo and the VRRP tests cover failover), real IPVS in the lab guest, real HTTP from a client behind
// the router to the three nodes, whose servers report the addresses they saw. The simulated API server is the
// only stand-in, plus lab/demo/kube-proxy.ts doing on the nodes what kube-proxy would. Then an upgrade in place
// on the state all those Services leave: a new build on the same ledger and kernel state, under traffic.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { curlMany, parseWhoami, type GuestProcess, labTimeScale } from '../../lab/vm/index.js';
import { parseIpvsadm, parseIpvsConns } from '../../lab/demo/ipvsadm.js';
import { parseLoop, summarize } from '../../lab/demo/loop-report.js';
import { CLIENT, LbLab, NODES, ROOT } from '../../lab/demo/stack.js';

const POOLS = [
  // The pool my-service's address came from in seeds/000 (192.0.2.2), with avoidBuggyIPs. The lab's LAN is
  // 198.51.100.0/24 (router .1, lb1 .2); lowest-free allocation never gets that far in this test.
  { name: 'default', addresses: ['192.0.2.0/24', '198.51.100.1-198.51.100.3'], avoidBuggyIPs: true },
  // seeds/000's user-cluster pool address-pool-1 is 172.16.40.100/32 + 172.16.40.101-172.16.40.112 with the
  // ingress VIP 172.16.40.102. Tests use documentation addresses only: the same shape in 203.0.113.0/24.
  { name: 'address-pool-1', addresses: ['203.0.113.100/32', '203.0.113.101-203.0.113.112'], avoidBuggyIPs: true },
  // seeds/000's my-address-pool-2 with manualAssign: true (192.0.2.73-192.0.2.80 there, which lies inside the
  // default pool here, so on the LAN instead): autoAssign false, used only when a Service asks for it.
  { name: 'manual', addresses: ['198.51.100.200-198.51.100.207'], autoAssign: false },
];

const service = (name: string, o: { port?: number; targetPort?: number; annotations?: Record<string, string>; local?: boolean; ports?: number[] } = {}) => `apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: default
${o.annotations ? `  annotations:\n${Object.entries(o.annotations).map(([k, v]) => `    ${k}: "${v}"`).join('\n')}\n` : ''}spec:
  type: LoadBalancer
  selector: {app: ${name}}
${o.local ? '  externalTrafficPolicy: Local\n' : ''}  ports:
${(o.ports ?? [o.port ?? 80]).map((p, i) => `  - {name: p${i}, port: ${p}, targetPort: ${i === 0 && o.targetPort ? o.targetPort : p}}`).join('\n')}
`;

// seeds/000, verbatim but for the namespace: the hello-app Deployment and my-service (port 60000 → 8080).
const MY_DEP_SVC = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: my-deployment
  namespace: default
spec:
  selector:
    matchLabels:
      greeting: hello
  replicas: 3
  template:
    metadata:
      labels:
        greeting: hello
    spec:
      containers:
      - name: hello
        image: gcr.io/google-samples/hello-app:2.0
---
apiVersion: v1
kind: Service
metadata:
  name: my-service
  namespace: default
spec:
  type: LoadBalancer
  selector:
    greeting: hello
  ports:
  - name: metal-lb-example-port
    protocol: TCP
    port: 60000
    targetPort: 8080
`;

const ALL_NODES = NODES.map((n) => n.name);

describe('lab acceptance: the walkthroughs of shared/seeds with the real daemon', { timeout: (1_200_000) * labTimeScale() }, () => {
  let lab: LbLab;
  const vips = new Map<string, string>();

  const table = async () => parseIpvsadm(await lab.ipvsadm('lb1', '-Ln'));
  /** Applies the manifest, places the Service's pods, waits for its address and lets the nodes accept it. */
  async function expose(name: string, yaml: string, nodes: readonly string[] = ALL_NODES, svcName = name): Promise<string> {
    await lab.apply(name, yaml);
    await lab.placeEndpoints('default', svcName, nodes);
    const ingress = await lab.waitFor(`an address for ${svcName}`, () => lab.ingressOf('default', svcName), 60_000, () => lab.daemon('lb1')?.log().slice(-3000) ?? '');
    assert.equal(ingress.ipMode, 'VIP', `${svcName}: ipMode`);
    await lab.syncKubeProxy();
    vips.set(svcName, ingress.ip);
    return ingress.ip;
  }
  /** Waits until the kernel serves key with exactly these real servers (address:port, all "Route"). */
  async function servedBy(key: string, servers: string[]): Promise<void> {
    await lab.waitFor(`${key} → ${servers.join(', ')}`, async () => {
      const s = (await table()).get(key);
      const got = (s?.servers ?? []).filter((r) => r.weight > 0).map((r) => `${r.server} ${r.forward}`).sort();
      return JSON.stringify(got) === JSON.stringify(servers.map((x) => `${x} Route`).sort()) ? true : undefined;
    }, 60_000, () => lab.daemon('lb1')?.log().slice(-3000) ?? '');
  }
  const events = async (name: string) => {
    const list = await lab.kubeGet<{ items: Array<{ reason: string; message: string }> }>(`/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3D${name}`);
    return list.items;
  };

  before(async () => {
    // Debug logs: when a step times out, the daemon's log says what it was doing (it is in the failure message).
    lab = await LbLab.start({ lbHosts: 1, vrrp: false, scheduler: 'rr', httpPorts: [80, 8080], pools: POOLS, logLevel: 'debug' });
    await lab.routeToLan('203.0.113.96/27');
  });

  after(async () => {
    await lab?.stop();
  });

  it('whoami (port 80, three endpoints) gets the pool\'s first usable address and reaches all three nodes', async () => {
    const ip = await expose('whoami', `apiVersion: apps/v1
kind: Deployment
metadata: {name: whoami, namespace: default}
spec:
  replicas: 3
  selector: {matchLabels: {app: whoami}}
  template:
    metadata: {labels: {app: whoami}}
    spec:
      containers: [{name: whoami, image: traefik/whoami, ports: [{containerPort: 80}]}]
---
${service('whoami')}`);
    // avoidBuggyIPs: 192.0.2.0 is skipped.
    assert.equal(ip, '192.0.2.1');
    await servedBy('TCP 192.0.2.1:80', NODES.map((n) => `${n.ip}:80`));
    assert.deepEqual(await lab.vipsOn('lb1'), ['192.0.2.1']);
    const answers = (await curlMany(lab.vm, CLIENT.name, 'http://192.0.2.1/', 6)).map(parseWhoami);
    // rr: each node twice; direct routing: each node saw the client itself and the VIP as its local address.
    assert.deepEqual(answers.map((a) => a.node).sort(), ['node-1', 'node-1', 'node-2', 'node-2', 'node-3', 'node-3']);
    for (const a of answers) assert.deepEqual([a.client, a.local, a.localPort], [CLIENT.ip, '192.0.2.1', 80]);
    assert.ok((await events('whoami')).some((e) => e.reason === 'IPAllocated' && e.message.includes('192.0.2.1 from pool default')));
  });

  it('my-service (port 60000 → targetPort 8080) gets 192.0.2.2 as in the walkthrough, and answers on port 60000 only', async () => {
    const ip = await expose('my-dep-svc', MY_DEP_SVC, ALL_NODES, 'my-service');
    assert.equal(ip, '192.0.2.2');
    // The walkthrough's `kubectl get service my-service --output wide`.
    const row = (await lab.kubectl(['get', 'service', 'my-service', '--output', 'wide'])).split('\n')[1] ?? '';
    assert.match(row, /^my-service\s+LoadBalancer\s+\S+\s+192\.0\.2\.2\s+60000:3\d{4}\/TCP\s+\S+\s+greeting=hello\s*$/);
    // DR keeps the Service port: the real servers are the nodes' port 60000, where kube-proxy takes over.
    await servedBy('TCP 192.0.2.2:60000', NODES.map((n) => `${n.ip}:60000`));
    const answers = (await curlMany(lab.vm, CLIENT.name, 'http://192.0.2.2:60000/', 3)).map(parseWhoami);
    assert.deepEqual(new Set(answers.map((a) => a.node)), new Set(ALL_NODES));
    // The "pod" (the node's server on 8080) saw the real client: DNAT to targetPort keeps the source.
    for (const a of answers) assert.deepEqual([a.client, a.localPort], [CLIENT.ip, 8080]);
    // A port the Service does not have is not forwarded: the LB host itself refuses it.
    const other = await curlMany(lab.vm, CLIENT.name, 'http://192.0.2.2:8080/', 1);
    assert.match(other[0]!, /^curl-failed code=000 exit=7$/);
  });

  it('avoidBuggyIPs: a Service asking for 192.0.2.255 gets nothing and an AllocationFailed event naming it', async () => {
    await lab.apply('buggy', service('buggy', { annotations: { 'ipvs-lb.io/load-balancer-ips': '192.0.2.255' } }));
    const refused = await lab.waitFor('an AllocationFailed event for buggy', async () => (await events('buggy')).find((e) => e.reason === 'AllocationFailed'));
    assert.match(refused.message, /192\.0\.2\.255/);
    assert.equal(await lab.ingressOf('default', 'buggy'), undefined);
    assert.equal((await table()).get('TCP 192.0.2.255:80'), undefined);
    await lab.kubectl(['delete', 'service', 'buggy']);
  });

  it('the ingress VIP requested from address-pool-1 (203.0.113.102) is served; the pool\'s /32 entry comes first otherwise', async () => {
    const ip = await expose('ingress', service('ingress', { annotations: { 'ipvs-lb.io/address-pool': 'address-pool-1', 'ipvs-lb.io/load-balancer-ips': '203.0.113.102' } }));
    assert.equal(ip, '203.0.113.102');
    await servedBy('TCP 203.0.113.102:80', NODES.map((n) => `${n.ip}:80`));
    const answers = (await curlMany(lab.vm, CLIENT.name, 'http://203.0.113.102/', 3)).map(parseWhoami);
    assert.equal(answers.length, 3);
    for (const a of answers) assert.deepEqual([a.client, a.local], [CLIENT.ip, '203.0.113.102']);
    assert.ok((await events('ingress')).some((e) => e.reason === 'IPAllocated' && e.message.includes('from pool address-pool-1')));
    // Without a requested address the pool hands out its lowest: the 203.0.113.100/32 entry.
    await lab.apply('ingress-b', service('ingress-b', { annotations: { 'ipvs-lb.io/address-pool': 'address-pool-1' } }));
    assert.equal((await lab.waitFor('an address for ingress-b', () => lab.ingressOf('default', 'ingress-b'))).ip, '203.0.113.100');
    await lab.kubectl(['delete', 'service', 'ingress-b']);
  });

  it('a manual-only pool is used only by request: a plain Service gets a default address, one that names the pool gets its first', async () => {
    const plain = await expose('plain', service('plain'));
    assert.ok(plain.startsWith('192.0.2.'), `plain got ${plain}`);
    const manual = await expose('manual-web', service('manual-web', { annotations: { 'ipvs-lb.io/address-pool': 'manual' } }));
    assert.equal(manual, '198.51.100.200');
    await servedBy('TCP 198.51.100.200:80', NODES.map((n) => `${n.ip}:80`));
    const answers = (await curlMany(lab.vm, CLIENT.name, 'http://198.51.100.200/', 3)).map(parseWhoami);
    for (const a of answers) assert.deepEqual([a.client, a.local], [CLIENT.ip, '198.51.100.200']);
    const pools = await lab.cli('lb1', ['pools', '-o', 'json']);
    assert.equal(pools.code, 0, pools.stderr);
    const manualPool = (JSON.parse(pools.stdout) as Array<{ name: string; used: number; autoAssign: boolean }>).find((p) => p.name === 'manual');
    assert.deepEqual([manualPool?.used, manualPool?.autoAssign], [1, false]);
  });

  it('two Services with one sharing key share an IP on different ports; a third with a clashing port gets its own', async () => {
    const shared = { 'ipvs-lb.io/allow-shared-ip': 'web' };
    const a = await expose('shared-http', service('shared-http', { annotations: shared }));
    const b = await expose('shared-alt', service('shared-alt', { annotations: shared, port: 8080 }));
    assert.equal(b, a, 'shared-alt joins shared-http\'s address');
    await servedBy(`TCP ${a}:80`, NODES.map((n) => `${n.ip}:80`));
    await servedBy(`TCP ${a}:8080`, NODES.map((n) => `${n.ip}:8080`));
    const onHttp = parseWhoami((await curlMany(lab.vm, CLIENT.name, `http://${a}/`, 1))[0]!);
    const onAlt = parseWhoami((await curlMany(lab.vm, CLIENT.name, `http://${a}:8080/`, 1))[0]!);
    assert.deepEqual([onHttp.local, onHttp.localPort, onAlt.local, onAlt.localPort], [a, 80, a, 8080]);
    const c = await expose('shared-clash', service('shared-clash', { annotations: shared }));
    assert.notEqual(c, a, 'port 80 is taken on the shared address');
    const rows = (await lab.api<{ items: Array<{ name: string; sharingKey: string }> }>('lb1', `/api/v1/allocations?address=${a}`)).items;
    assert.deepEqual(rows.map((r) => `${r.name}/${r.sharingKey}`).sort(), ['shared-alt/web', 'shared-http/web']);
  });

  it('externalTrafficPolicy Local: only nodes with a ready local endpoint get traffic, and they see the client\'s own address', async () => {
    const ip = await expose('local-web', service('local-web', { local: true }), ['node-2']);
    await servedBy(`TCP ${ip}:80`, ['198.51.100.12:80']);
    let answers = (await curlMany(lab.vm, CLIENT.name, `http://${ip}/`, 4)).map(parseWhoami);
    for (const a of answers) assert.deepEqual([a.node, a.client], ['node-2', CLIENT.ip]);
    // The pod moves to node-3: the virtual service follows.
    await lab.placeEndpoints('default', 'local-web', ['node-3']);
    await servedBy(`TCP ${ip}:80`, ['198.51.100.13:80']);
    await lab.syncKubeProxy();
    answers = (await curlMany(lab.vm, CLIENT.name, `http://${ip}/`, 4)).map(parseWhoami);
    for (const a of answers) assert.deepEqual([a.node, a.client], ['node-3', CLIENT.ip]);
  });

  describe('upgrade in place', () => {
    const NEW_ROOT = '/opt/ipvs-lb-next';
    const NEW_VERSION = '0.1.0-upgrade.1';

    it('a new build started on the same ledger and kernel state writes nothing to the kernel and no request fails', async (t) => {
      await lab.installBuild(NEW_ROOT, NEW_VERSION);
      const statusesBefore = await lab.kubectl(['get', 'services', '-o', 'jsonpath={range .items[*]}{.metadata.name}={.status.loadBalancer.ingress[*].ip}{"\\n"}{end}']);
      const allocations = async () => JSON.stringify((await lab.api<{ items: unknown[] }>('lb1', '/api/v1/allocations?limit=1000')).items);
      const allocationsBefore = await allocations();
      const tableBefore = await lab.ipvsadm('lb1', '-Ln');
      const vipsBefore = await lab.vipsOn('lb1');
      assert.ok(vipsBefore.length >= 7, `VIPs before: ${vipsBefore.join(' ')}`);

      // A steady client through two VIPs across the whole upgrade, and a record of every address change on lb1.
      // Two requests a second each: the guest is one emulated CPU, and a faster loop (its node servers fork a
      // shell per request) starves the starting daemon. A request fails after 10 s (TCP gives up on a SYN
      // retried at 1, 3 and 7 s), so a slow guest is not taken for a dropped request.
      const loops: GuestProcess[] = [];
      for (const [name, url] of [['loop-whoami', 'http://192.0.2.1/'], ['loop-my-service', 'http://192.0.2.2:60000/']] as const) {
        loops.push(await lab.vm.spawn(name, ['node', `${ROOT}/dist/lab/demo/request-loop.js`, url, '--interval', '500', '--timeout', '10000'], { ns: CLIENT.name }));
      }
      const monitor = await lab.vm.spawn('ip-monitor-lb1', ['ip', '-o', 'monitor', 'address', 'route', 'link'], { ns: 'lb1' });
      const answered = () => loops.map((l) => summarize(parseLoop(l.log()))).reduce((n, s) => n + s.requests - s.failures, 0);
      await lab.waitFor('steady answers', async () => (answered() >= 10 ? true : undefined));

      assert.equal(await lab.stopDaemon('lb1', 'TERM'), 0, 'the old daemon stopped cleanly');
      const connsStopped = parseIpvsConns(await lab.ipvsadm('lb1', '-Ln', '--stats', '--exact'));
      // No daemon at all: the kernel keeps forwarding.
      const withoutDaemon = answered();
      await lab.waitFor('answers while no daemon runs', async () => (answered() >= withoutDaemon + 10 ? true : undefined));
      assert.deepEqual(await lab.vipsOn('lb1'), vipsBefore, 'a stop without VRRP leaves the VIPs bound');

      await lab.startDaemon('lb1', { root: NEW_ROOT });
      const daemon = lab.daemon('lb1')!;
      const openapi = await lab.api<{ info: { version: string } }>('lb1', '/api/v1/openapi.json');
      assert.equal(openapi.info.version, NEW_VERSION, 'the new build runs');
      const reconcile = await lab.api<{ operations: number; errors: number }>('lb1', '/api/v1/reconcile', 'POST');
      assert.deepEqual([reconcile.operations, reconcile.errors], [0, 0]);
      const withNewBuild = answered();
      await lab.waitFor('answers through the new build', async () => (answered() >= withNewBuild + 10 ? true : undefined));
      for (const l of loops) await l.stop();
      // The monitor must be seen to work: a canary address (added and removed by the test itself) shows up.
      await lab.vm.run(['ip', 'addr', 'add', '198.51.100.250/32', 'dev', 'lo'], { ns: 'lb1' });
      await lab.waitFor('ip monitor to report the canary address', async () => (monitor.log().includes('198.51.100.250') ? true : undefined));
      await monitor.stop();
      await lab.vm.run(['ip', 'addr', 'del', '198.51.100.250/32', 'dev', 'lo'], { ns: 'lb1' });

      // Zero kernel writes: no address, route or link change on lb1 since the old daemon was still running, the
      // new daemon's start-up pass applied nothing, and no virtual service or real server was re-created (their
      // connection totals kept counting up from where they were).
      // (The launcher's shell notes the monitor's own end as "Terminated".)
      const changes = monitor.log().split('\n').filter((l) => l.trim() !== '' && l.trim() !== 'Terminated' && !l.includes('198.51.100.250'));
      assert.deepEqual(changes, [], `address/route/link changes on lb1:\n${monitor.log()}`);
      assert.doesNotMatch(daemon.log(), /kernel reconciled|"type":"announced"/, 'the new daemon changed the kernel');
      assert.deepEqual(parseIpvsadm(await lab.ipvsadm('lb1', '-Ln')), parseIpvsadm(tableBefore));
      const connsAfter = parseIpvsConns(await lab.ipvsadm('lb1', '-Ln', '--stats', '--exact'));
      for (const [key, n] of connsStopped) assert.ok((connsAfter.get(key) ?? -1) >= n, `${key}: ${n} connections before, ${connsAfter.get(key)} after`);
      // The same addresses for the same Services, in the ledger and in their status.
      assert.equal(await allocations(), allocationsBefore);
      assert.equal(await lab.kubectl(['get', 'services', '-o', 'jsonpath={range .items[*]}{.metadata.name}={.status.loadBalancer.ingress[*].ip}{"\\n"}{end}']), statusesBefore);

      for (const l of loops) {
        const s = summarize(parseLoop(l.log()));
        t.diagnostic(`${l.name}: ${s.requests} requests, ${s.failures} failed, slowest answer ${s.slowestMs} ms`);
        assert.ok(s.requests >= 20, `${l.name}: only ${s.requests} requests`);
        assert.equal(s.failures, 0, `${l.name}: ${s.failures} of ${s.requests} requests failed (${s.errors.join(', ')})`);
      }
    });
  });
});
