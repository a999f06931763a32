// Backend health with the real daemon on a real IPVS kernel (the UML guest), real traffic and node-side
// health servers like kube-proxy's: a node whose health server stops gets no new connections within
// interval × fall while a stream in flight on it goes on to its end, is removed once drained, and comes back
// after `rise` successes; a healthCheckNodePort answering 503 takes the node out of the Local Service only;
// the DR path check (per-node fwmark services, marked probes through the VIP) takes out a node that lost the
// VIP on kube-ipvs0 while its kube-proxy health still says 200. The marker is iptables-legacy: Debian's UML
// kernel has no nf_tables families (test/lab/health-nft.test.ts runs the nftables marker under QEMU).
// Times are measured and printed as diagnostics, never asserted; what must hold is polled for.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { applyTopology, curlMany, parseWhoami, restartServer, setHealthz, type GuestProcess, type Topology, type Vm, startVm, labTimeScale } from '../../lab/vm/index.js';
import { poll } from '../../lab/poll.js';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');
const cli = join(root, 'bin', 'ipvs-lb.js');
const kubectl = join(root, '.cache', 'kubernetes-client', 'usr', 'bin', 'kubectl');
const KUBE = '/tmp/kube';
const WEB = '192.0.2.1';
const LOCAL = '192.0.2.2';
const HCNP = 31001;
const NODES = ['node-1', 'node-2', 'node-3'];
const ipOf = (node: string) => `198.51.100.${11 + NODES.indexOf(node)}`;
const nodeOf = (ip: string) => NODES[Number(ip.split('.')[3]) - 11]!;
// Generous: under emulation on a shared machine one HTTP answer can take more than two seconds.
const HC = { intervalSeconds: 5, timeoutSeconds: 4.5, rise: 2, fall: 2 };

const manifests = `apiVersion: v1
kind: Service
metadata: {name: web, namespace: default, annotations: {ipvs-lb.io/load-balancer-ips: ${WEB}}}
spec:
  type: LoadBalancer
  ports: [{name: http, port: 80}, {name: stream, port: 7}]
---
apiVersion: v1
kind: Service
metadata: {name: local, namespace: default, annotations: {ipvs-lb.io/load-balancer-ips: ${LOCAL}}}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  healthCheckNodePort: ${HCNP}
  ports: [{name: http, port: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: local-1, namespace: default, labels: {kubernetes.io/service-name: local}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
${NODES.map((n, i) => `- {addresses: [203.0.113.${201 + i}], nodeName: ${n}, conditions: {ready: true}}`).join('\n')}
`;

// A client that keeps one TCP connection through the VIP busy, one line every 300 ms, until told to stop;
// exit 0 only if every line came back.
const streamScript = `import net from 'node:net';
import { existsSync } from 'node:fs';
const [host, port, stop] = process.argv.slice(2);
const s = net.connect({ host, port: Number(port) });
let sent = 0, received = 0, buf = '';
const tick = () => { if (existsSync(stop)) { s.end(); return; } s.write('ping ' + (++sent) + '\\n'); setTimeout(tick, 300); };
s.on('connect', () => { console.log('connected localport=' + s.localPort); tick(); });
s.on('data', (d) => { buf += d; const lines = buf.split('\\n'); buf = lines.pop(); for (const l of lines) { received++; console.log('echo ' + l); } });
s.on('close', () => { console.log('done sent=' + sent + ' received=' + received); process.exit(received === sent && sent > 0 ? 0 : 1); });
s.on('error', (e) => { console.log('error ' + e.message); process.exit(2); });
`;

interface RsView { node: string; weight: number; state: string; health: string; checks?: Array<{ kind: string; state: string; lastError: string | null; consecutiveSuccesses: number }> }
interface VsView { key: string; realServers: RsView[] }

describe('lab: backend health with the real daemon, real IPVS and real traffic', { timeout: (900_000) * labTimeScale() }, () => {
  let vm: Vm;
  let topo: Topology;
  let daemon: GuestProcess;
  const k = (...args: string[]) => vm.run([kubectl, '--kubeconfig', `${KUBE}/kubeconfig`, ...args], { ns: 'lb1', timeoutMs: 60_000 });
  const api = async <T>(path: string): Promise<T> => JSON.parse((await vm.run(['curl', '-sS', `http://127.0.0.1:9742${path}`], { ns: 'lb1' })).stdout) as T;
  const vss = async () => (await api<{ items: VsView[] }>('/api/v1/virtual-services')).items;
  const rsOf = async (vsKey: string) => (await vss()).find((v) => v.key === vsKey)?.realServers ?? [];
  const ipvs = async () => (await vm.run(['ipvsadm', '-Ln'], { ns: 'lb1' })).stdout;
  /** node → weight in one virtual service of `ipvsadm -Ln` (absent: not a destination). */
  const weights = async (vip: string, port: number): Promise<Map<string, number>> => {
    const out = new Map<string, number>();
    let inside = false;
    for (const line of (await ipvs()).split('\n')) {
      if (/^(TCP|UDP|FWM)/.test(line)) inside = line.startsWith(`TCP  ${vip}:${port} `);
      const m = inside ? /->\s+(198\.51\.100\.\d+):\d+\s+Route\s+(\d+)/.exec(line) : null;
      if (m) out.set(nodeOf(m[1]!), Number(m[2]));
    }
    return out;
  };
  const until = <T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> =>
    poll(what, check, { timeoutMs: timeoutMs * labTimeScale(), describe: async () => `--- ipvsadm ---\n${await ipvs().catch(() => '')}\n--- daemon log ---\n${daemon?.log().slice(-4000)}` });
  const allServing = async (vip: string, port: number) => {
    const w = await weights(vip, port);
    return NODES.every((n) => w.get(n) === 1) ? true : undefined;
  };
  const nodesReached = async (url: string, n: number) => (await curlMany(vm, 'client1', url, n, 10)).map((b) => (b.startsWith('curl-failed') ? b : parseWhoami(b).node));

  before(async () => {
    vm = await startVm({ backend: 'uml', memoryMb: 768 });
    topo = await applyTopology(vm, {
      lbs: [{ name: 'lb1', ip: '198.51.100.2' }],
      nodes: NODES.map((name) => ({ name, ip: ipOf(name), vipMode: 'kube-ipvs0' as const, vips: [WEB, LOCAL], http: [80, 8080], echo: [7], healthz: [10256, HCNP] })),
      clients: [{ name: 'client1', ip: '203.0.113.10' }],
    });
    await vm.run('modprobe -a ip_vs ip_vs_rr iptable_mangle ip6table_mangle xt_mark xt_tcpudp');
    await vm.spawn('kube-sim', ['node', cli, 'lab', '--port', '6443', '--dir', KUBE], { ns: 'lb1' });
    await until('simulator', async () => ((await vm.exec(['test', '-s', `${KUBE}/kubeconfig`])).code === 0 ? true : undefined));
    await k('create', 'namespace', 'ipvs-lb');
    await vm.writeFile('/tmp/lb1.yaml', stringify({
      hostName: 'lb1', interface: 'eth0', stateDir: '/tmp/lb1-state',
      kubernetes: { kubeconfig: `${KUBE}/kubeconfig`, lease: { durationSeconds: 6, renewDeadlineSeconds: 4, retryPeriodSeconds: 1 } },
      pools: [{ name: 'default', addresses: ['192.0.2.0/24'], avoidBuggyIPs: true }],
      scheduler: 'rr', vrrp: { enabled: false, garpRepeat: 1 }, reconcile: { coalesceMs: 20, resyncSeconds: 5 },
      // The daemon sets accept_local on eth0 itself (the nodes answer DR probes from the VIP it holds).
      sysctl: { manage: true },
      healthCheck: { ...HC, drainGraceSeconds: 600, flapDamping: { enabled: false }, drPath: { marker: 'iptables-legacy' } },
    }));
    daemon = await vm.spawn('daemon', ['node', cli, 'daemon', '--config', '/tmp/lb1.yaml'], { ns: 'lb1' });
    await until('daemon ready', async () => ((await api<{ ready: boolean }>('/readyz')).ready ? true : undefined));
    await vm.writeFile('/tmp/services.yaml', manifests);
    await k('apply', '-f', '/tmp/services.yaml');
    await vm.writeFile('/tmp/stream.mjs', streamScript);
    await until('both Services programmed with three healthy nodes', async () => {
      if (!(await allServing(WEB, 80)) || !(await allServing(WEB, 7)) || !(await allServing(LOCAL, 8080))) return undefined;
      const all = await vss();
      // Every check has an answer: a real server serves while a check is still unknown (optimistic start),
      // so its health reads up before the DR path check's first round is through.
      return all.every((v) => v.realServers.every((r) => r.health === 'up' && (r.checks ?? []).every((c) => c.state === 'up'))) ? true : undefined;
    });
  });

  after(async () => {
    await vm?.stop();
  });

  it('shows every real server up with the checks behind it, and the DR path machinery in the kernel', async () => {
    const web = await rsOf(`TCP/${WEB}:80`);
    for (const r of web) {
      assert.deepEqual(r.checks?.map((c) => `${c.kind}:${c.state}`), ['kube-proxy:up', 'dr:up'], `${r.node} in web`);
    }
    const local = await rsOf(`TCP/${LOCAL}:8080`);
    for (const r of local) assert.deepEqual(r.checks?.map((c) => `${c.kind}:${c.state}`), ['service:up', 'dr:up'], `${r.node} in local`);
    const table = await ipvs();
    for (const n of NODES) assert.match(table, new RegExp(`FWM\\s+\\d+ rr\\n\\s+->\\s+${ipOf(n).replace(/\./g, '\\.')}:0\\s+Route\\s+1`));
    const marks = (await vm.run(['iptables-legacy', '-t', 'mangle', '-S', 'IPVS-LB-HEALTH'], { ns: 'lb1' })).stdout;
    assert.equal(marks.split('\n').filter((l) => l.includes('--set-xmark')).length, 3, marks);
  });

  it('a node whose health server stops gets no new connections, a stream on it completes, and it returns after rise', async (t) => {
    // The stream picks its node by the scheduler; that node is the one whose health server stops.
    const stream = await vm.spawn('stream', ['node', '/tmp/stream.mjs', WEB, '7', '/tmp/stream.stop'], { ns: 'client1' });
    const port = await until('stream connected', async () => /connected localport=(\d+)/.exec(stream.log())?.[1]);
    const victim = await until('the stream in the IPVS connection table', async () => {
      const m = new RegExp(`203\\.0\\.113\\.10:${port}\\s+${WEB.replace(/\./g, '\\.')}:7\\s+(198\\.51\\.100\\.\\d+):7`).exec((await vm.run(['ipvsadm', '-Lnc'], { ns: 'lb1' })).stdout);
      return m ? nodeOf(m[1]!) : undefined;
    });
    const echoes = () => (stream.log().match(/^echo /gm) ?? []).length;

    const t0 = Date.now();
    await topo.servers.get(`healthz-${victim}-10256`)!.stop();
    await until(`${victim} at weight 0 in web`, async () => ((await weights(WEB, 80)).get(victim) !== 1 && (await weights(WEB, 7)).get(victim) === 0 ? true : undefined));
    const drainedAfter = Date.now() - t0;
    t.diagnostic(`health server of ${victim} stopped → weight 0 after ${drainedAfter} ms (interval ${HC.intervalSeconds} s × fall ${HC.fall})`);

    const reached = await nodesReached(`http://${WEB}/`, 9);
    assert.ok(!reached.includes(victim), `new connections still reach ${victim}: ${reached.join(' ')}`);
    assert.ok(reached.every((n) => NODES.includes(n)), `every request is served: ${reached.join(' ')}`);
    const view = (await rsOf(`TCP/${WEB}:7`)).find((r) => r.node === victim)!;
    assert.equal(view.health, 'down');
    assert.equal(view.state, 'draining-unhealthy');
    assert.match(view.checks!.find((c) => c.kind === 'kube-proxy')!.lastError ?? '', /connection refused/);

    // No connection is left on port 80 of the victim, so it is removed there; on port 7 the stream holds it.
    await until(`${victim} removed from ${WEB}:80 once drained`, async () => (!(await weights(WEB, 80)).has(victim) ? true : undefined));
    assert.equal((await weights(WEB, 7)).get(victim), 0, 'the draining destination with the stream must stay');
    const before = echoes();
    await until('the stream still flowing on the drained node', async () => (echoes() >= before + 5 ? true : undefined));
    await vm.writeFile('/tmp/stream.stop', '');
    assert.equal(await stream.wait(60_000), 0, `the stream did not complete:\n${stream.log().slice(-500)}`);
    assert.match(stream.log(), /done sent=(\d+) received=\1/);
    await until(`${victim} removed from ${WEB}:7 after the stream ended`, async () => (!(await weights(WEB, 7)).has(victim) ? true : undefined));

    await restartServer(vm, `healthz-${victim}-10256`, `healthz-${victim}-10256-again`);
    const t1 = Date.now();
    await until(`${victim} back in web`, async () => ((await allServing(WEB, 80)) && (await allServing(WEB, 7)) ? true : undefined));
    t.diagnostic(`health server of ${victim} back → weight 1 after ${Date.now() - t1} ms (rise ${HC.rise})`);
    const back = (await rsOf(`TCP/${WEB}:80`)).find((r) => r.node === victim)!;
    assert.equal(back.health, 'up');
    assert.ok(back.checks!.find((c) => c.kind === 'kube-proxy')!.consecutiveSuccesses >= HC.rise);
    await until(`new connections reaching ${victim} again`, async () => ((await nodesReached(`http://${WEB}/`, 6)).includes(victim) ? true : undefined));
  });

  it('a healthCheckNodePort answering 503 takes the node out of the Local Service only', async (t) => {
    const t0 = Date.now();
    await setHealthz(vm, 'node-3', HCNP, 503);
    await until('node-3 out of local', async () => ((await weights(LOCAL, 8080)).get('node-3') !== 1 ? true : undefined));
    t.diagnostic(`healthCheckNodePort 503 → node-3 out of local after ${Date.now() - t0} ms`);
    // The Cluster Service does not depend on that port at all, so node-3 serves it throughout.
    const inWeb = (await rsOf(`TCP/${WEB}:80`)).find((r) => r.node === 'node-3')!;
    assert.deepEqual(inWeb.checks?.map((c) => c.kind), ['kube-proxy', 'dr']);
    await until('node-3 serving web', () => allServing(WEB, 80));
    const local = await nodesReached(`http://${LOCAL}:8080/`, 8);
    assert.ok(!local.includes('node-3'), local.join(' '));
    await until('web reaching node-3', async () => ((await nodesReached(`http://${WEB}/`, 6)).includes('node-3') ? true : undefined));
    const view = (await rsOf(`TCP/${LOCAL}:8080`)).find((r) => r.node === 'node-3');
    if (view) assert.equal(view.health, 'down');
    const svc = await api<{ virtualServices: VsView[] }>('/api/v1/services/default/local');
    assert.ok(svc.virtualServices[0]!.realServers.every((r) => r.node !== 'node-3' || r.health === 'down'));

    // The last healthy backend goes: an Event on the Service; and another when one returns.
    for (const n of ['node-1', 'node-2']) await setHealthz(vm, n, HCNP, 503);
    const reasons = async () => (await k('get', 'events', '-n', 'default', '--field-selector', 'involvedObject.name=local', '-o', 'jsonpath={range .items[*]}{.reason}{"\\t"}{.message}{"\\n"}{end}')).stdout;
    const lost = await until('NoHealthyBackends Event', async () => (await reasons()).split('\n').find((l) => l.startsWith('NoHealthyBackends')));
    // Under load some of the reasons may be timeouts rather than the 503; the Event names the check either way.
    assert.match(lost, new RegExp(`TCP/${LOCAL.replace(/\./g, '\\.')}:8080: no healthy node, new connections fail: .*healthCheckNodePort 198\\.51\\.100\\.1\\d:${HCNP}/healthz`));
    for (const n of ['node-1', 'node-2', 'node-3']) await setHealthz(vm, n, HCNP, 200);
    const back = await until('HealthyBackends Event', async () => (await reasons()).split('\n').find((l) => l.startsWith('HealthyBackends')));
    assert.match(back, /traffic flows again/);
    await until('local whole again', () => allServing(LOCAL, 8080));
  });

  it('the DR path check takes out a node without the VIP on kube-ipvs0 while its kube-proxy health says 200', async (t) => {
    const t0 = Date.now();
    await vm.run(['ip', 'addr', 'del', `${WEB}/32`, 'dev', 'kube-ipvs0'], { ns: 'node-1' });
    await until('node-1 out of web', async () => {
      const [a, b] = [await weights(WEB, 80), await weights(WEB, 7)];
      return a.get('node-1') !== 1 && b.get('node-1') !== 1 ? true : undefined;
    });
    t.diagnostic(`VIP removed from node-1's kube-ipvs0 → node-1 out of web after ${Date.now() - t0} ms`);
    const healthz = (await vm.run(['curl', '-sS', '-o', '/dev/null', '-w', '%{http_code}', `http://${ipOf('node-1')}:10256/healthz`], { ns: 'lb1' })).stdout;
    assert.equal(healthz, '200');
    // It still holds the other VIP, so the Local Service keeps it.
    await until('node-1 serving local', () => allServing(LOCAL, 8080));
    const inLocal = (await rsOf(`TCP/${LOCAL}:8080`)).find((r) => r.node === 'node-1')!;
    assert.equal(inLocal.checks?.find((c) => c.kind === 'dr')?.state, 'up');
    assert.ok(!(await nodesReached(`http://${WEB}/`, 6)).includes('node-1'));
    const metrics = (await vm.run(['curl', '-sS', 'http://127.0.0.1:9742/metrics'], { ns: 'lb1' })).stdout;
    assert.match(metrics, /ipvs_lb_health_probes_total\{kind="dr",result="failure"\} [1-9]/);
    assert.match(metrics, /ipvs_lb_health_targets\{kind="dr",state="down"\} [1-9]/);
    await until('the API explaining it', async () => {
      const web = await api<{ virtualServices: VsView[] }>('/api/v1/services/default/web');
      const n1 = web.virtualServices.flatMap((v) => v.realServers).filter((r) => r.node === 'node-1');
      // Removed once drained: then the kernel has no destination for it and the API no row.
      return n1.every((r) => r.health === 'down' && r.checks?.find((c) => c.kind === 'kube-proxy')?.state === 'up' && r.checks.find((c) => c.kind === 'dr')?.state === 'down') ? true : undefined;
    });

    const t1 = Date.now();
    await vm.run(['ip', 'addr', 'add', `${WEB}/32`, 'dev', 'kube-ipvs0'], { ns: 'node-1' });
    await until('node-1 back in web', async () => ((await allServing(WEB, 80)) && (await allServing(WEB, 7)) ? true : undefined));
    t.diagnostic(`VIP back on node-1 → weight 1 after ${Date.now() - t1} ms`);
    await until('web reaching node-1 again', async () => ((await nodesReached(`http://${WEB}/`, 6)).includes('node-1') ? true : undefined));
  });
});
