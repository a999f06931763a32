// Operating the real daemon on a real IPVS kernel (the UML guest): /metrics carries the traffic a client
// really sent, per virtual service and per real server, and agrees with ipvsadm; the CLI shows it; doctor
// checks the guest's real modules and sysctls and passes once they are set. Then, restarted with VRRP (so
// it runs keepalived), a reload that keepalived refuses changes nothing and a SIGHUP with it does not kill
// the daemon. (VRRP is off for the traffic part: with one LB host under a loaded emulator keepalived's
// one-second daemon check times out now and then, which moves the VIP away; that is VRRP's own subject.)
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { applyTopology, curlMany, parseWhoami, startVm, type GuestProcess, type Vm, labTimeScale } from '../../lab/vm/index.js';
import { parseExposition, type Exposition } from '../support/prom.js';
import { poll } from '../../lab/poll.js';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');
const cli = join(root, 'bin', 'ipvs-lb.js');
const kubectl = join(root, '.cache', 'kubernetes-client', 'usr', 'bin', 'kubectl');
const VIP = '192.0.2.1';
const KUBE = '/tmp/kube';
const CONFIG = '/tmp/lb1.yaml';
const REQUESTS = 30;

const service = `apiVersion: v1
kind: Service
metadata: {name: whoami, namespace: default}
spec:
  type: LoadBalancer
  selector: {app: whoami}
  ports: [{name: http, port: 80, targetPort: 80}]
`;

const config = (over: { vrrp?: boolean; groupInterface?: string; extraPool?: boolean } = {}) => ({
  hostName: 'lb1', interface: 'eth0', stateDir: '/tmp/lb1-state',
  kubernetes: { kubeconfig: `${KUBE}/kubeconfig`, lease: { durationSeconds: 6, renewDeadlineSeconds: 4, retryPeriodSeconds: 1 } },
  pools: [{ name: 'default', addresses: ['192.0.2.0/24'], avoidBuggyIPs: true }, ...(over.extraPool ? [{ name: 'extra', addresses: ['203.0.113.200/32'] }] : [])],
  scheduler: 'rr',
  vrrp: over.vrrp
    ? { garpRepeat: 1, syncDaemon: { enabled: false }, groups: [{ name: 'a', virtualRouterId: 51, priority: 150, interface: over.groupInterface ?? 'eth0', advertIntervalSeconds: 1 }] }
    : { enabled: false, garpRepeat: 1 },
  reconcile: { coalesceMs: 20, resyncSeconds: 2 },
  healthCheck: { enabled: false },
});

describe('lab: metrics, CLI, doctor and reloads of the real daemon', { timeout: (420_000) * labTimeScale() }, () => {
  let vm: Vm;
  let daemon: GuestProcess;
  const k = (...args: string[]) => vm.run([kubectl, '--kubeconfig', `${KUBE}/kubeconfig`, ...args], { ns: 'lb1', timeoutMs: 60_000 });
  const token = async () => (await vm.readFile('/tmp/lb1-state/api-token')).trim();
  const http = async (path: string, method = 'GET') => {
    const auth = method === 'POST' ? ['-H', `Authorization: Bearer ${await token()}`] : [];
    const r = await vm.exec(['curl', '-sS', '-X', method, '-w', '\n%{http_code}', ...auth, `http://127.0.0.1:9742${path}`], { ns: 'lb1' });
    const i = r.stdout.lastIndexOf('\n');
    return { status: Number(r.stdout.slice(i + 1)), body: r.stdout.slice(0, i) };
  };
  const metrics = async (): Promise<Exposition> => parseExposition((await http('/metrics')).body);
  const ipvsLb = (...args: string[]) => vm.exec(['node', cli, ...args, '--config', CONFIG], { ns: 'lb1', timeoutMs: 120_000 });
  const until = <T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> =>
    poll(what, check, { timeoutMs: timeoutMs * labTimeScale(), describe: () => `--- daemon log ---\n${daemon?.log().slice(-3000)}` });

  before(async () => {
    vm = await startVm({ backend: 'uml' });
    await applyTopology(vm, {
      lbs: [{ name: 'lb1', ip: '198.51.100.2' }],
      nodes: ['node-1', 'node-2', 'node-3'].map((name, i) => ({ name, ip: `198.51.100.${11 + i}`, vipMode: 'kube-ipvs0' as const, vips: [VIP] })),
      clients: [{ name: 'client1', ip: '203.0.113.10' }],
    });
    await vm.run('modprobe ip_vs && modprobe ip_vs_rr');
    await vm.spawn('kube-sim', ['node', cli, 'lab', '--port', '6443', '--dir', KUBE], { ns: 'lb1' });
    await until('simulator', async () => ((await vm.exec(['test', '-s', `${KUBE}/kubeconfig`])).code === 0 ? true : undefined));
    await k('create', 'namespace', 'ipvs-lb');
    await vm.writeFile(CONFIG, stringify(config()));
    daemon = await vm.spawn('daemon', ['node', cli, 'daemon', '--config', CONFIG], { ns: 'lb1' });
    await vm.writeFile('/tmp/whoami.yaml', service);
    await k('apply', '-f', '/tmp/whoami.yaml');
    await until('VIP bound', async () => ((await vm.run(['ip', '-o', 'addr', 'show', 'dev', 'eth0'], { ns: 'lb1' })).stdout.includes(`inet ${VIP}/32`) ? true : undefined));
    await until('three real servers', async () => ((await vm.run(['ipvsadm', '-Ln'], { ns: 'lb1' })).stdout.match(/Route/g)?.length === 3 ? true : undefined));
  });

  after(async () => {
    if (process.env.IPVS_LB_TEST_LOGS && daemon) process.stderr.write(`--- daemon log\n${daemon.log()}\n`);
    await vm?.stop();
  });

  it('/metrics counts the connections, packets and bytes a client sent, per virtual service and per real server', async (t) => {
    const answers = (await curlMany(vm, 'client1', `http://${VIP}/`, REQUESTS)).map(parseWhoami);
    const connections = new Set(answers.map((a) => `${a.client}:${a.clientPort}`)).size;
    const perNode = new Map<string, number>();
    for (const a of answers) perNode.set(a.node, (perNode.get(a.node) ?? 0) + 1);
    assert.equal(perNode.size, 3);
    const vs = { vip: VIP, protocol: 'TCP', port: '80', service: 'default/whoami' };
    // The kernel folds its counters in every 2 s (vm-lab.md): poll until the scrape shows all of them.
    const e = await until('counters', async () => {
      const m = await metrics();
      return m.value('ipvs_lb_virtual_service_connections_total', vs) === connections && m.value('ipvs_lb_virtual_service_connections_per_second', vs) > 0 ? m : undefined;
    });
    const packetsIn = e.value('ipvs_lb_virtual_service_packets_in_total', vs);
    const bytesIn = e.value('ipvs_lb_virtual_service_bytes_in_total', vs);
    // At least SYN, ACK, the request and FIN per connection; each at least a 40-byte TCP/IP header.
    assert.ok(packetsIn >= 4 * connections, `packets in ${packetsIn} for ${connections} connections`);
    assert.ok(bytesIn >= 40 * packetsIn, `bytes in ${bytesIn} for ${packetsIn} packets`);
    // Direct routing: the replies go from the nodes straight to the client.
    assert.equal(e.value('ipvs_lb_virtual_service_packets_out_total', vs), 0);
    assert.equal(e.value('ipvs_lb_virtual_service_bytes_out_total', vs), 0);
    let rsConns = 0;
    let rsBytes = 0;
    for (const [i, node] of ['node-1', 'node-2', 'node-3'].entries()) {
      const rs = { ...vs, real_server: `198.51.100.${11 + i}`, node };
      const c = e.value('ipvs_lb_real_server_connections_total', rs);
      assert.equal(c, perNode.get(node), `${node}: ${c} connections in the metrics, ${perNode.get(node)} answers`);
      assert.ok(e.value('ipvs_lb_real_server_bytes_in_total', rs) > 0);
      assert.equal(e.value('ipvs_lb_real_server_weight', rs), 1);
      // Closed by the client moments ago: the kernel still holds them as inactive (FIN_WAIT/TIME_WAIT).
      assert.ok(e.value('ipvs_lb_real_server_active_connections', rs) + e.value('ipvs_lb_real_server_inactive_connections', rs) > 0);
      rsConns += c;
      rsBytes += e.value('ipvs_lb_real_server_bytes_in_total', rs);
    }
    assert.equal(rsConns, connections);
    assert.equal(rsBytes, bytesIn);
    // The same figures as ipvsadm's, read from the same kernel.
    const stats = (await vm.run(['ipvsadm', '-Ln', '--stats', '--exact'], { ns: 'lb1' })).stdout;
    const row = new RegExp(`TCP\\s+${VIP.replace(/\./g, '\\.')}:80\\s+(\\d+)\\s+(\\d+)\\s+(\\d+)\\s+(\\d+)\\s+(\\d+)`).exec(stats);
    assert.ok(row, stats);
    assert.deepEqual(row.slice(1, 6).map(Number), [connections, packetsIn, 0, bytesIn, 0]);
    t.diagnostic(`measured: ${connections} connections, ${packetsIn} packets and ${bytesIn} bytes in, cps ${e.value('ipvs_lb_virtual_service_connections_per_second', vs)}; per node ${JSON.stringify(Object.fromEntries(perNode))}`);
    // The rest of the surface in the same scrape.
    assert.equal(e.value('ipvs_lb_virtual_services'), 1);
    assert.equal(e.value('ipvs_lb_leader'), 1);
    assert.equal(e.value('ipvs_lb_pool_used', { pool: 'default' }), 1);
    assert.ok(e.value('ipvs_lb_reconcile_duration_seconds_count') >= 1);
    assert.ok(e.value('ipvs_lb_reconcile_operations_total', { op: 'add-destination' }) >= 3);
    assert.ok(e.value('ipvs_lb_reconcile_last_success_timestamp_seconds') > 1.7e9);
    assert.equal(e.value('ipvs_lb_allocation_changes_total', { kind: 'allocate' }), 1);
  });

  it('the CLI shows the same traffic and state', async () => {
    const s = await ipvsLb('services', '-o', 'json');
    assert.equal(s.code, 0, s.stderr);
    const [v] = JSON.parse(s.stdout) as Array<{ key: string; stats: { connections: number }; realServers: Array<{ node: string; stats: { connections: number } }> }>;
    assert.equal(v!.key, `TCP/${VIP}:80`);
    assert.ok(v!.stats.connections >= REQUESTS / 2);
    assert.equal(v!.realServers.reduce((n, r) => n + r.stats.connections, 0), v!.stats.connections);
    const status = await ipvsLb('status');
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^ready: yes/m);
    assert.match(status.stdout, /^allocator: this host/m);
    assert.match(status.stdout, /^last reconcile: \S+, 0 operations, 0 errors/m);
  });

  it('doctor checks the real modules and sysctls, and passes once the sysctls are set', async () => {
    const report = async () => {
      const r = await ipvsLb('doctor', '-o', 'json');
      return { code: r.code, checks: (JSON.parse(r.stdout) as { checks: Array<{ group: string; name: string; status: string; message: string }> }).checks };
    };
    const first = await report();
    const by = (checks: typeof first.checks, name: string) => checks.find((c) => c.name === name)!;
    assert.equal(by(first.checks, 'ip_vs').status, 'ok', by(first.checks, 'ip_vs').message);
    assert.equal(by(first.checks, 'ip_vs_rr').status, 'ok');
    assert.equal(by(first.checks, 'net.ipv4.vs.expire_nodest_conn').status, 'warn');
    assert.match(by(first.checks, 'net.ipv4.vs.expire_nodest_conn').message, /^is 0, want 1/);
    await vm.run(['sh', '-c', 'sysctl -qw net.ipv4.vs.expire_nodest_conn=1 net.ipv4.vs.expire_quiescent_template=1 net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2'], { ns: 'lb1' });
    const second = await report();
    assert.deepEqual(second.checks.filter((c) => c.status !== 'ok' && c.name !== 'keepalived'), [], 'everything passes');
    assert.equal(second.code, 0);
    assert.equal(by(second.checks, 'net.ipv4.conf.all.arp_announce').message, '2 (eth0: 0)');
    assert.equal(by(second.checks, 'keepalived').status, 'skip');
    assert.equal(by(second.checks, 'arping').status, 'ok');
  });

  it('a reload that keepalived refuses changes nothing; the same file by SIGHUP does not stop the daemon', async () => {
    await daemon.stop();
    await vm.writeFile(CONFIG, stringify(config({ vrrp: true })));
    daemon = await vm.spawn('daemon-vrrp', ['node', cli, 'daemon', '--config', CONFIG], { ns: 'lb1' });
    await until('keepalived running', async () => (/keepalived running/.test(daemon.log()) && (await http('/readyz')).status === 200 ? true : undefined));
    const keepalived = await vm.readFile('/run/ipvs-lb/keepalived.conf');
    const pools = (await http('/api/v1/pools')).body;
    await vm.writeFile(CONFIG, stringify(config({ vrrp: true, groupInterface: 'nosuch0', extraPool: true })));
    const r = await http('/api/v1/config/reload', 'POST');
    assert.equal(r.status, 400, r.body);
    const body = JSON.parse(r.body) as { problems: string[] };
    assert.equal(body.problems.length, 1);
    assert.match(body.problems[0]!, /^vrrp: keepalived refused the rendered configuration:[\s\S]*nosuch0/);
    assert.equal((await http('/api/v1/pools')).body, pools, 'the new pool was applied although the reload was refused');
    assert.equal(await vm.readFile('/run/ipvs-lb/keepalived.conf'), keepalived);
    await daemon.signal('HUP');
    await until('the refusal logged', async () => (/config reload refused/.test(daemon.log().split('\n').slice(-50).join('\n')) ? true : undefined));
    assert.equal(await daemon.running(), true);
    assert.equal((await http('/readyz')).status, 200);
    assert.equal(await vm.readFile('/run/ipvs-lb/keepalived.conf'), keepalived);
    // The good file again: accepted, and the extra pool appears.
    await vm.writeFile(CONFIG, stringify(config({ vrrp: true, extraPool: true })));
    const ok = await http('/api/v1/config/reload', 'POST');
    assert.equal(ok.status, 200, ok.body);
    assert.deepEqual((JSON.parse((await http('/api/v1/pools')).body) as { items: Array<{ name: string }> }).items.map((p) => p.name), ['default', 'extra']);
  });
});
