// The Kubernetes side's promises on a real IPVS kernel (the UML guest), with the API simulator running as
// `ipvs-lb lab` next to the daemon and steered through its admin API, as a user would:
// - an API outage (connections refused for OUTAGE_S seconds) changes no IPVS service, no destination and no
//   VIP, traffic keeps flowing through the VIP, /readyz says why; afterwards everything is as before;
// - a Service deleted while the daemon was down loses its virtual service (and its VIP stays unbound) at the
//   next start, while the other Service's state is untouched.
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
const KUBE = '/tmp/kube';
const [VIP_A, VIP_B] = ['192.0.2.1', '192.0.2.2'];
/** Longer than the daemon's Lease duration (6 s) so it steps down meanwhile; see the integration test for 60 s. */
const OUTAGE_S = Number(process.env.IPVS_LB_TEST_OUTAGE_SECONDS ?? 15);

const service = (name: string) => `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: default}
spec:
  type: LoadBalancer
  selector: {app: ${name}}
  ports: [{name: http, port: 80, targetPort: 80}]
`;

describe('lab: the daemon\'s kernel state across an API outage and a Service deleted while it was down', { timeout: (300_000 + OUTAGE_S * 1000) * labTimeScale() }, () => {
  let vm: Vm;
  let daemon: GuestProcess;
  const k = (...args: string[]) => vm.run([kubectl, '--kubeconfig', `${KUBE}/kubeconfig`, ...args], { ns: 'lb1', timeoutMs: 60_000 });
  const api = async (path: string) => JSON.parse((await vm.run(['curl', '-sS', `http://127.0.0.1:9742${path}`], { ns: 'lb1' })).stdout) as Record<string, unknown>;
  /** The simulator's admin API, the way `ipvs-lb lab` prints it. */
  const admin = (method: string, path: string, body?: unknown) =>
    vm.run(['curl', '-sS', '--fail-with-body', '--cacert', `${KUBE}/ca.crt`, '-H', `@${KUBE}/admin.header`, '-X', method, ...(body ? ['-d', JSON.stringify(body)] : []), `https://127.0.0.1:6443/kube-sim/v1/${path}`], { ns: 'lb1' });
  /** Services, schedulers, destinations, forwarding and weights; without the connection counters, which traffic moves. */
  const ipvs = async () => (await vm.run(['ipvsadm', '-Ln'], { ns: 'lb1' })).stdout.split('\n').map((l) => l.replace(/^(\s+->\s+\S+\s+\S+\s+\d+)\s+\d+\s+\d+\s*$/, '$1')).join('\n');
  const vips = async () => (await vm.run(['ip', '-o', 'addr', 'show', 'dev', 'eth0'], { ns: 'lb1' })).stdout.split('\n').filter((l) => /inet 192\.0\.2\./.test(l)).map((l) => /inet (\S+)/.exec(l)![1]!).sort();
  let starts = 0;
  const startDaemon = () => vm.spawn(`daemon-${++starts}`, ['node', cli, 'daemon', '--config', '/tmp/lb1.yaml'], { ns: 'lb1' });
  const until = <T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> =>
    poll(what, check, { timeoutMs: timeoutMs * labTimeScale(), describe: () => `--- daemon log ---\n${daemon?.log().slice(-3000)}` });

  before(async () => {
    vm = await startVm({ backend: 'uml' });
    await applyTopology(vm, {
      lbs: [{ name: 'lb1', ip: '198.51.100.2' }],
      nodes: ['node-1', 'node-2', 'node-3'].map((name, i) => ({ name, ip: `198.51.100.${11 + i}`, vipMode: 'kube-ipvs0' as const, vips: [VIP_A, VIP_B] })),
      clients: [{ name: 'client1', ip: '203.0.113.10' }],
    });
    await vm.run('modprobe ip_vs && modprobe ip_vs_rr');
    await vm.spawn('kube-sim', ['node', cli, 'lab', '--port', '6443', '--dir', KUBE], { ns: 'lb1' });
    await until('simulator', async () => ((await vm.exec(['test', '-s', `${KUBE}/admin.header`])).code === 0 ? true : undefined));
    await k('create', 'namespace', 'ipvs-lb');
    await vm.writeFile('/tmp/lb1.yaml', stringify({
      hostName: 'lb1', interface: 'eth0', stateDir: '/tmp/lb1-state',
      kubernetes: { kubeconfig: `${KUBE}/kubeconfig`, lease: { durationSeconds: 6, renewDeadlineSeconds: 4, retryPeriodSeconds: 1 } },
      pools: [{ name: 'default', addresses: ['192.0.2.0/24'], avoidBuggyIPs: true }],
      scheduler: 'rr',
      vrrp: { enabled: false, garpRepeat: 1 },
      reconcile: { coalesceMs: 20, resyncSeconds: 2 },
      healthCheck: { enabled: false },
    }));
    daemon = await startDaemon();
    for (const name of ['web-a', 'web-b']) {
      await vm.writeFile(`/tmp/${name}.yaml`, service(name));
      await k('apply', '-f', `/tmp/${name}.yaml`);
    }
    await until('both VIPs programmed and bound', async () => {
      const t = await ipvs();
      const bound = await vips();
      return [VIP_A, VIP_B].every((v) => t.includes(`${v}:80`)) && bound.join() === `${VIP_A}/32,${VIP_B}/32` && (t.match(/Route/g) ?? []).length === 6 ? true : undefined;
    });
  });

  after(async () => {
    await vm?.stop();
  });

  it(`an API outage of ${OUTAGE_S} s changes no IPVS service, destination or VIP, and traffic keeps flowing`, async () => {
    const table = await ipvs();
    const bound = await vips();
    assert.match(table, /TCP\s+192\.0\.2\.1:80 rr/);
    await admin('POST', 'restart', { downMs: OUTAGE_S * 1000 });
    const health = await until('degraded health', async () => {
      const h = await api('/readyz') as { ready: boolean; checks: { kubernetes: boolean }; messages: string[] };
      return h.checks.kubernetes ? undefined : h;
    }, 30_000);
    assert.equal(health.ready, true, 'still ready: fail static');
    assert.match(health.messages.join('\n'), /fail static/);
    // The periodic kernel reconcile (every 2 s here) runs all through the outage: it must change nothing. A
    // sample counts when the simulator was still down after it was taken (it was down before: health said so).
    const apiDown = async () => (await vm.exec(['curl', '-sS', '--max-time', '1', '-o', '/dev/null', '--cacert', `${KUBE}/ca.crt`, 'https://127.0.0.1:6443/version'], { ns: 'lb1' })).code !== 0;
    let samples = 0;
    for (;;) {
      const [t, b] = [await ipvs(), await vips()];
      const answers = await curlMany(vm, 'client1', `http://${VIP_A}/`, 3);
      if (!(await apiDown())) break;
      assert.equal(t, table, 'IPVS changed during the outage');
      assert.deepEqual(b, bound, 'VIPs changed during the outage');
      assert.ok(answers.every((a) => !a.startsWith('curl-failed')), `traffic through the VIP during the outage: ${answers.join(' | ')}`);
      for (const a of answers) assert.equal(parseWhoami(a).client, '203.0.113.10');
      samples++;
    }
    assert.ok(samples >= 1, 'no sample fell inside the outage');
    await until('connected again', async () => ((await api('/readyz') as { checks: { kubernetes: boolean } }).checks.kubernetes ? true : undefined));
    assert.equal(await ipvs(), table);
    assert.deepEqual(await vips(), bound);
    const status = await k('get', 'svc', 'web-a', 'web-b', '-o', 'jsonpath={.items[*].status.loadBalancer.ingress[0].ip}');
    assert.equal(status.stdout, `${VIP_A} ${VIP_B}`);
  });

  it('a Service deleted while the daemon was down loses its virtual service at the next start; the other keeps everything', async () => {
    await daemon.stop();
    const left = await ipvs();
    assert.match(left, /192\.0\.2\.2:80/, 'the IPVS table stays as programmed while the daemon is down');
    await k('delete', '-f', '/tmp/web-b.yaml');
    daemon = await startDaemon();
    const table = await until('web-b\'s virtual service removed', async () => {
      const t = await ipvs();
      return t.includes(`${VIP_B}:80`) ? undefined : t;
    });
    assert.match(table, /TCP\s+192\.0\.2\.1:80 rr/);
    assert.equal((table.match(/Route/g) ?? []).length, 3, 'web-a keeps its three destinations');
    await until('web-a bound again', async () => ((await vips()).join() === `${VIP_A}/32` ? true : undefined));
    const ledger = await api('/api/v1/events?limit=50') as { items: { action: string; reason: string; service: string; address: string }[] };
    assert.ok(ledger.items.some((r) => r.action === 'release' && r.reason === 'ServiceGoneWhileDown' && r.service === 'default/web-b' && r.address === VIP_B), JSON.stringify(ledger.items.slice(0, 5)));
    const answers = await curlMany(vm, 'client1', `http://${VIP_A}/`, 3);
    assert.ok(answers.every((a) => !a.startsWith('curl-failed')), answers.join(' | '));
    assert.deepEqual(new Set(answers.map((a) => parseWhoami(a).client)), new Set(['203.0.113.10']));
  });
});
