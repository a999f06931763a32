// The reconciler's promises to traffic that is already flowing, with the real daemon on a real IPVS kernel:
// - a daemon restart with nothing changed makes zero kernel writes (no IPVS operation, no address change seen
//   by `ip monitor`) and an open TCP stream through the VIP keeps flowing throughout;
// - a node going NotReady drops to weight 0: its open stream keeps flowing, new connections go to the other
//   node; after the grace period the node is removed, and with net.ipv4.vs.expire_nodest_conn (which the
//   daemon checks, and here sets) its leftover stream is cut at once instead of hanging.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { applyTopology, curlMany, parseWhoami, startVm, type GuestProcess, type Vm, labTimeScale } from '../../lab/vm/index.js';
import { LabDaemon, startStream, until, type Stream } from './daemon-lab.js';

const VIP = '192.0.2.10';
const ECHO = 7;
const GRACE_S = 20;
const NODES = [
  { name: 'node-1', ip: '198.51.100.11' },
  { name: 'node-2', ip: '198.51.100.12' },
];

const service = `apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 80}, {name: echo, port: ${ECHO}, targetPort: ${ECHO}}]
`;

/** `ipvsadm -Ln` destinations of one virtual service: address → weight. */
function weights(table: string, vip: string, port: number): Map<string, number> {
  const out = new Map<string, number>();
  let inside = false;
  for (const line of table.split('\n')) {
    const s = /^(TCP|UDP|SCTP)\s+(\S+)/.exec(line);
    if (s) inside = s[2] === `${vip}:${port}`;
    const d = /^\s+->\s+(\d+\.\d+\.\d+\.\d+):\d+\s+\S+\s+(\d+)/.exec(line);
    if (inside && d) out.set(d[1]!, Number(d[2]));
  }
  return out;
}

describe('lab: open streams through a daemon restart and a node going NotReady', { timeout: (420_000) * labTimeScale() }, () => {
  let vm: Vm;
  let lab: LabDaemon;
  let stream: Stream;
  let streamNode: { name: string; ip: string };
  let monitor: GuestProcess;

  before(async () => {
    vm = await startVm({ backend: 'uml' });
    await applyTopology(vm, {
      lbs: [{ name: 'lb1', ip: '198.51.100.2' }],
      nodes: NODES.map((n) => ({ ...n, vipMode: 'kube-ipvs0' as const, vips: [VIP], http: [80], echo: [ECHO] })),
      clients: [{ name: 'client1', ip: '203.0.113.10' }],
    });
    await vm.run('modprobe -a ip_vs ip_vs_rr');
    lab = await LabDaemon.start({
      vm, ns: 'lb1', nodes: NODES.map((n) => ({ name: n.name, ips: [n.ip] })),
      config: {
        interface: 'eth0',
        pools: [{ name: 'default', addresses: ['192.0.2.10-192.0.2.19'] }],
        scheduler: 'rr',
        backends: { notReadyGraceSeconds: GRACE_S },
        sysctl: { manage: true },
        vrrp: { enabled: false, garpRepeat: 1 },
        reconcile: { coalesceMs: 20, resyncSeconds: 2 },
        healthCheck: { enabled: false },
      },
    });
    await lab.apply('web', service);
    await until('the virtual services on both nodes', async () => {
      const t = await lab.ipvsadm('-Ln');
      return weights(t, VIP, ECHO).size === 2 && weights(t, VIP, 80).size === 2 ? true : undefined;
    }, { timeoutMs: 120_000, log: lab.log });
    stream = await startStream(vm, 'long', 'client1', VIP, ECHO);
    const conns = await lab.ipvsadm('-Lnc');
    const m = new RegExp(`203\\.0\\.113\\.10:\\d+\\s+${VIP.replace(/\./g, '\\.')}:${ECHO}\\s+(198\\.51\\.100\\.1[12]):${ECHO}`).exec(conns);
    assert.ok(m, `the stream's connection in ipvsadm -Lnc:\n${conns}`);
    streamNode = NODES.find((n) => n.ip === m[1])!;
  });

  after(async () => {
    await vm?.stop();
  });

  it('a restart with nothing changed writes nothing to the kernel and the open stream keeps flowing', async () => {
    const before = await lab.ipvsadm('-Ln');
    monitor = await vm.spawn('ip-monitor', ['ip', '-o', 'monitor', 'address'], { ns: 'lb1' });
    await stream.flowing(3, 'before the restart');
    await lab.stopDaemon();
    await stream.flowing(5, 'while the daemon is down');
    assert.equal(await lab.ipvsadm('-Ln'), before, 'the table stays while the daemon is down (fail static)');
    await lab.startDaemon();
    await until('ready after the restart', async () => ((await lab.api('/readyz')).ready === true ? true : undefined), { log: lab.log });
    const r = await lab.api<{ operations: number; errors: number; kernelRead: boolean }>('/api/v1/reconcile', 'POST');
    assert.deepEqual([r.operations, r.errors, r.kernelRead], [0, 0, true]);
    await stream.flowing(5, 'after the restart');
    assert.doesNotMatch(lab.log(), /kernel reconciled/, 'no pass since the restart applied any operation');
    const metrics = (await vm.run(['curl', '-sS', 'http://127.0.0.1:9742/metrics'], { ns: 'lb1' })).stdout;
    assert.doesNotMatch(metrics, /^ipvs_lb_reconcile_operations_total\{[^}]*\} [1-9]/m);
    assert.match(metrics, /^ipvs_lb_reconcile_duration_seconds_count [1-9]/m, 'passes ran and were counted');
    assert.equal(await lab.ipvsadm('-Ln'), before);
    await monitor.stop();
    assert.doesNotMatch(monitor.log(), new RegExp(VIP.replace(/\./g, '\\.')), `the VIP was never removed or re-added:\n${monitor.log()}`);
  });

  it('a NotReady node is drained to weight 0: its stream continues, new connections go to the other node', async () => {
    const other = NODES.find((n) => n !== streamNode)!;
    await lab.admin('PUT', `nodes/${streamNode.name}/ready`, { ready: false });
    await until('weight 0 for the NotReady node', async () => {
      const t = await lab.ipvsadm('-Ln');
      return weights(t, VIP, ECHO).get(streamNode.ip) === 0 && weights(t, VIP, 80).get(streamNode.ip) === 0 ? t : undefined;
    }, { log: lab.log });
    const t = await lab.ipvsadm('-Ln');
    assert.equal(weights(t, VIP, 80).get(other.ip), 1);
    await stream.flowing(5, 'after the drain');
    const answers = (await curlMany(vm, 'client1', `http://${VIP}/`, 4)).map(parseWhoami);
    assert.deepEqual(answers.map((a) => a.node), [other.name, other.name, other.name, other.name]);
  });

  it('after the grace period the node is removed, and its leftover stream is cut instead of hanging', async () => {
    await until('the NotReady node removed', async () => {
      const t = await lab.ipvsadm('-Ln');
      return !weights(t, VIP, ECHO).has(streamNode.ip) && !weights(t, VIP, 80).has(streamNode.ip) ? true : undefined;
    }, { timeoutMs: (GRACE_S + 60) * 1000, log: lab.log });
    // expire_nodest_conn=1: the stream's next packet finds no destination, IPVS drops the connection entry and
    // the client gets a reset from the LB within its next few lines.
    await until('the stream to the removed node ends', async () => stream.failure(), { timeoutMs: 30_000, log: () => stream.proc.log() });
    const fresh = await startStream(vm, 'after', 'client1', VIP, ECHO);
    await fresh.flowing(3, 'a new stream');
    const other = NODES.find((n) => n !== streamNode)!;
    const established = (await lab.ipvsadm('-Lnc')).split('\n').filter((l) => l.includes('ESTABLISHED') && l.includes(`${VIP}:${ECHO}`));
    assert.equal(established.length, 1, established.join('\n'));
    assert.ok(established[0]!.trim().endsWith(`${other.ip}:${ECHO}`), established[0]);
  });
});
