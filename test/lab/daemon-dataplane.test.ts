// The real daemon on a real IPVS kernel (the UML guest): a Service applied with kubectl gets a VIP, the
// daemon binds it and programs IPVS by direct routing to the three nodes, and a client's requests reach
// every node with its own address intact. Then the reconciler's promises: an unchanged restart makes zero
// kernel writes, a destination deleted by hand comes back by itself, a foreign IPVS service stays untouched, and a
// deleted Service leaves neither virtual service nor VIP behind.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { applyTopology, curlMany, parseWhoami, startVm, type GuestProcess, type Vm, labTimeScale } from '../../lab/vm/index.js';
import { poll } from '../../lab/poll.js';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');
const cli = join(root, 'bin', 'ipvs-lb.js');
const kubectl = join(root, '.cache', 'kubernetes-client', 'usr', 'bin', 'kubectl');
const VIP = '192.0.2.1';
const KUBE = '/tmp/kube';

const service = `apiVersion: v1
kind: Service
metadata: {name: whoami, namespace: default}
spec:
  type: LoadBalancer
  selector: {app: whoami}
  ports: [{name: http, port: 80, targetPort: 80}]
`;

describe('lab: the daemon programs real IPVS and binds the VIP', { timeout: (300_000) * labTimeScale() }, () => {
  let vm: Vm;
  let daemon: GuestProcess;
  const k = (...args: string[]) => vm.run([kubectl, '--kubeconfig', `${KUBE}/kubeconfig`, ...args], { ns: 'lb1', timeoutMs: 60_000 });
  const api = async (path: string, method = 'GET') => {
    const token = method === 'POST' ? ['-H', `Authorization: Bearer ${(await vm.readFile('/tmp/lb1-state/api-token')).trim()}`] : [];
    const r = await vm.run(['curl', '-sS', '-X', method, ...token, `http://127.0.0.1:9742${path}`], { ns: 'lb1' });
    return JSON.parse(r.stdout) as Record<string, unknown>;
  };
  const ipvs = async () => (await vm.run(['ipvsadm', '-Ln'], { ns: 'lb1' })).stdout;
  let starts = 0;
  const startDaemon = () => vm.spawn(`daemon-${++starts}`, ['node', cli, 'daemon', '--config', '/tmp/lb1.yaml'], { ns: 'lb1' });
  const until = <T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> =>
    poll(what, check, { timeoutMs: timeoutMs * labTimeScale(), describe: () => `--- daemon log ---\n${daemon?.log().slice(-3000)}` });

  before(async () => {
    vm = await startVm({ backend: 'uml' });
    await applyTopology(vm, {
      lbs: [{ name: 'lb1', ip: '198.51.100.2' }],
      // kube-proxy in IPVS mode with strictARP, as the sample cluster's kube-proxy config says.
      nodes: ['node-1', 'node-2', 'node-3'].map((name, i) => ({ name, ip: `198.51.100.${11 + i}`, vipMode: 'kube-ipvs0' as const, vips: [VIP] })),
      clients: [{ name: 'client1', ip: '203.0.113.10' }],
    });
    await vm.run('modprobe ip_vs && modprobe ip_vs_rr');
    // The API simulator shares lb1's loopback with the daemon.
    await vm.spawn('kube-sim', ['node', cli, 'lab', '--port', '6443', '--dir', KUBE], { ns: 'lb1' });
    await until('simulator', async () => ((await vm.exec(['test', '-s', `${KUBE}/kubeconfig`])).code === 0 ? true : undefined));
    await k('create', 'namespace', 'ipvs-lb');
    await vm.writeFile('/tmp/lb1.yaml', stringify({
      hostName: 'lb1', interface: 'eth0', stateDir: '/tmp/lb1-state',
      kubernetes: { kubeconfig: `${KUBE}/kubeconfig`, lease: { durationSeconds: 6, renewDeadlineSeconds: 4, retryPeriodSeconds: 1 } },
      pools: [{ name: 'default', addresses: ['192.0.2.0/24'], avoidBuggyIPs: true }],
      scheduler: 'rr',
      vrrp: { enabled: false, garpRepeat: 1 },
      // No periodic resync during the run: the rolling verification alone must find out-of-band edits.
      reconcile: { coalesceMs: 20, resyncSeconds: 3600, verifyIntervalMs: 500 },
      healthCheck: { enabled: false },
    }));
    daemon = await startDaemon();
    await vm.writeFile('/tmp/whoami.yaml', service);
    await k('apply', '-f', '/tmp/whoami.yaml');
  });

  after(async () => {
    await vm?.stop();
  });

  it('allocates the VIP, binds it and programs a DR virtual service over the three nodes', async () => {
    const ip = await until('EXTERNAL-IP', async () => {
      const r = await k('get', 'svc', 'whoami', '-o', 'jsonpath={.status.loadBalancer.ingress[0].ip}/{.status.loadBalancer.ingress[0].ipMode}');
      return r.stdout === `${VIP}/VIP` ? r.stdout : undefined;
    });
    assert.equal(ip, `${VIP}/VIP`);
    const table = await until('virtual service', async () => ((await ipvs()).includes('198.51.100.13:80') ? ipvs() : undefined));
    assert.match(table, new RegExp(`TCP\\s+${VIP.replace(/\./g, '\\.')}:80 rr`));
    for (const n of [11, 12, 13]) assert.match(table, new RegExp(`->\\s+198\\.51\\.100\\.${n}:80\\s+Route\\s+1`));
    const addrs = (await vm.run(['ip', '-o', 'addr', 'show', 'dev', 'eth0'], { ns: 'lb1' })).stdout;
    assert.match(addrs, new RegExp(`inet ${VIP.replace(/\./g, '\\.')}/32`));
  });

  it('a client reaches every node through the VIP and each node sees the client address', async () => {
    const answers = (await curlMany(vm, 'client1', `http://${VIP}/`, 6)).map(parseWhoami);
    assert.deepEqual(new Set(answers.map((a) => a.node)), new Set(['node-1', 'node-2', 'node-3']));
    for (const a of answers) assert.equal(a.client, '203.0.113.10');
  });

  it('the rolling verification restores a destination deleted by hand, says so, and leaves a foreign service alone', async () => {
    await vm.run(['ipvsadm', '-A', '-t', '203.0.113.99:22', '-s', 'wlc'], { ns: 'lb1' });
    await vm.run(['ipvsadm', '-d', '-t', `${VIP}:80`, '-r', '198.51.100.12:80'], { ns: 'lb1' });
    // No request to the daemon and no resync due (resyncSeconds 3600): the verification every 0.5 s re-reads
    // the service and repairs it.
    const table = await until('the destination back', async () => ((await ipvs()).match(/198\.51\.100\.12:80\s+Route/) ? ipvs() : undefined));
    assert.match(table, /TCP\s+203\.0\.113\.99:22 wlc/);
    await until('the drift reported', async () => (/"services":\["TCP\/192\.0\.2\.1:80"\].*"foundBy":"verification".*changed outside ipvs-lb; restored/.test(daemon.log()) ? true : undefined));
    const metrics = (await vm.run(['curl', '-sS', 'http://127.0.0.1:9742/metrics'], { ns: 'lb1' })).stdout;
    assert.match(metrics, /^ipvs_lb_reconcile_drift_total 1$/m);
    assert.match(metrics, /^ipvs_lb_reconcile_verified_total [1-9]\d*$/m);
    // The scheduler changed by hand (ipvsadm -E) comes back the same way.
    await vm.run(['ipvsadm', '-E', '-t', `${VIP}:80`, '-s', 'wlc'], { ns: 'lb1' });
    await until('the scheduler back', async () => (new RegExp(`TCP\\s+${VIP.replace(/\./g, '\\.')}:80 rr`).test(await ipvs()) ? true : undefined));
    // The metric follows the pass that wrote the repair.
    await until('the second drift counted', async () => (/^ipvs_lb_reconcile_drift_total 2$/m.test((await vm.run(['curl', '-sS', 'http://127.0.0.1:9742/metrics'], { ns: 'lb1' })).stdout) ? true : undefined));
  });

  it('a restart with nothing changed makes zero kernel writes', async () => {
    const before = await ipvs();
    await daemon.stop();
    daemon = await startDaemon();
    await until('ready', async () => ((await api('/readyz')).ready === true ? true : undefined));
    const r = await api('/api/v1/reconcile', 'POST');
    assert.deepEqual([r.operations, r.errors], [0, 0]);
    assert.doesNotMatch(daemon.log(), /kernel reconciled/, 'the first pass after restart applied operations');
    assert.equal(await ipvs(), before);
  });

  it('deleting the Service removes its virtual service and releases the VIP; the foreign service stays', async () => {
    await k('delete', '-f', '/tmp/whoami.yaml');
    const table = await until('virtual service gone', async () => ((await ipvs()).includes(`${VIP}:80`) ? undefined : ipvs()));
    assert.match(table, /TCP\s+203\.0\.113\.99:22 wlc/);
    await until('VIP unbound', async () => ((await vm.run(['ip', '-o', 'addr', 'show', 'dev', 'eth0'], { ns: 'lb1' })).stdout.includes(VIP) ? undefined : true));
  });
});
