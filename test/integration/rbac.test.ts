// deploy/rbac.yaml is the least RBAC that works: it grants exactly what src/doctor/permissions.ts lists, the
// real daemon does everything it does under those rules and nothing else (the simulator records every 403),
// a conflicting status write recovers under them, and `ipvs-lb doctor` names a permission that is taken away.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { CoreV1Api, type V1Service } from '@kubernetes/client-node';
import { parseAllDocuments, stringify } from 'yaml';
import { KubeSim, sampleCluster, type AccessRule } from '../../lab/kube-sim/index.js';
import { parseConfig } from '../../src/config/schema.js';
import { requiredPermissions } from '../../src/doctor/permissions.js';
import { TokenBucket } from '../../src/util/rate-limit.js';
import { StatusWriter } from '../../src/watcher/status.js';
import { cli, eventually, repoRoot, startDaemon, type DaemonHandle } from '../support/daemon.js';

const run = promisify(execFile);

interface K8sRule { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }
interface K8sObject { kind: string; metadata: { name: string; namespace?: string }; rules?: K8sRule[]; roleRef?: { kind: string; name: string }; subjects?: Array<{ kind: string; name: string; namespace?: string }> }

/** The rules deploy/rbac.yaml binds to the ipvs-lb ServiceAccount, as the simulator's access rules. */
export function rulesOfRbacYaml(text: string): AccessRule[] {
  const docs = parseAllDocuments(text).map((d) => d.toJS() as K8sObject);
  const roles = new Map(docs.filter((d) => d.kind === 'ClusterRole' || d.kind === 'Role').map((d) => [`${d.kind}/${d.metadata.namespace ?? ''}/${d.metadata.name}`, d]));
  const out: AccessRule[] = [];
  for (const b of docs.filter((d) => d.kind === 'ClusterRoleBinding' || d.kind === 'RoleBinding')) {
    assert.deepEqual(b.subjects, [{ kind: 'ServiceAccount', name: 'ipvs-lb', namespace: 'ipvs-lb' }], `${b.kind} ${b.metadata.name} binds someone else`);
    const ns = b.kind === 'RoleBinding' ? b.metadata.namespace! : '';
    const role = roles.get(`${b.roleRef!.kind}/${b.roleRef!.kind === 'Role' ? ns : ''}/${b.roleRef!.name}`);
    assert.ok(role, `${b.kind} ${b.metadata.name} refers to a missing ${b.roleRef!.kind} ${b.roleRef!.name}`);
    for (const r of role.rules ?? []) out.push({ verbs: r.verbs, apiGroups: r.apiGroups, resources: r.resources, ...(ns ? { namespaces: [ns] } : {}), ...(r.resourceNames ? { resourceNames: r.resourceNames } : {}) });
  }
  return out;
}

const rbacText = readFileSync(join(repoRoot, 'deploy', 'rbac.yaml'), 'utf8');
const defaults = parseConfig({ interface: 'eth0', pools: [{ name: 'p', addresses: ['192.0.2.0/24'] }], vrrp: { enabled: false } });
assert.ok(defaults.ok);
const required = requiredPermissions(defaults.config.kubernetes);

/** One string per (verb, group, resource, namespace, name): what a grant or a need covers. */
const tuples = (list: Array<{ verbs: string[]; groups: string[]; resources: string[]; namespace: string; names: string[] }>) =>
  new Set(list.flatMap((r) => r.verbs.flatMap((v) => r.groups.flatMap((g) => r.resources.flatMap((res) => (r.names.length ? r.names : ['*']).map((n) => `${v} ${g}/${res} ns=${r.namespace} name=${n}`))))));

describe('deploy/rbac.yaml', { timeout: 180_000 }, () => {
  let sim: KubeSim;
  let dir: string;
  let kubeconfig: string;
  let daemon: DaemonHandle | undefined;
  const rules = rulesOfRbacYaml(rbacText);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ipvs-lb-rbac-'));
    sim = await KubeSim.start({ rules });
    kubeconfig = await sim.writeKubeconfig(join(dir, 'kubeconfig'));
    sampleCluster(sim);
    sim.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ipvs-lb' } });
  });
  after(async () => {
    await daemon?.stop('SIGKILL');
    await sim.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('grants exactly the permissions the daemon and doctor need, no more', () => {
    const granted = tuples(rules.map((r) => ({ verbs: r.verbs, groups: r.apiGroups, resources: r.resources, namespace: r.namespaces?.[0] ?? '*', names: r.resourceNames ?? [] })));
    const needed = tuples(required.map((p) => ({ verbs: p.verbs, groups: [p.group], resources: [p.subresource ? `${p.resource}/${p.subresource}` : p.resource], namespace: p.namespace ?? '*', names: p.name ? [p.name] : [] })));
    assert.deepEqual([...granted].sort(), [...needed].sort());
    assert.ok(!rbacText.includes("'*'") && !/\[\s*"?\*"?\s*\]/.test(rbacText), 'no wildcard');
  });

  it('the real daemon allocates, writes status and Events and holds the Lease without a single 403', async () => {
    sim.resetCounts();
    daemon = await startDaemon({ name: 'lb1', dir: join(dir, 'lb1'), kubeconfig });
    sim.create({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default' }, spec: { type: 'LoadBalancer', selector: { app: 'web' }, ports: [{ port: 80 }] } });
    await eventually('ingress', () => {
      const s = sim.get('v1', 'Service', 'web', 'default') as V1Service | undefined;
      return s?.status?.loadBalancer?.ingress?.[0]?.ipMode === 'VIP' ? true : undefined;
    });
    await eventually('IPAllocated Event', () => ((sim.list('v1', 'Event', 'default') as { reason?: string }[]).some((e) => e.reason === 'IPAllocated') ? true : undefined));
    const lease = sim.get('coordination.k8s.io/v1', 'Lease', 'ipvs-lb-allocator', 'ipvs-lb') as { spec?: { holderIdentity?: string } } | undefined;
    assert.equal(lease?.spec?.holderIdentity, 'lb1');
    // A release, too: delete and watch the ingress address come back to the pool.
    sim.delete('v1', 'Service', 'web', 'default');
    await eventually('release', async () => ((await daemon!.api<{ total: number }>('/api/v1/allocations')).body.total === 0 ? true : undefined));
    assert.deepEqual(sim.deniedRequests(), []);
    const counts = sim.requestCounts();
    for (const k of ['watch services', 'watch nodes', 'watch endpointslices', 'watch namespaces', 'patch services/status', 'create events']) assert.ok((counts[k] ?? 0) > 0, `no ${k} in ${JSON.stringify(counts)}`);
  });

  it('a conflicting status write re-reads the status and succeeds under these rules', async () => {
    // Of another class, so the running daemon leaves it alone and the only other writer is the one below.
    const svc = sim.create({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'race', namespace: 'default' }, spec: { type: 'LoadBalancer', loadBalancerClass: 'other.example/lb', ports: [{ port: 80 }] } }) as V1Service;
    // Someone else writes in between: the copy we hold is stale, so the first patch gets 409.
    sim.update({ ...svc, metadata: { ...svc.metadata, labels: { touched: 'yes' } } } as never);
    const core = sim.kubeConfig().makeApiClient(CoreV1Api);
    const writer = new StatusWriter({ api: core, limiter: new TokenBucket(100, 100), stillOurs: () => true });
    sim.resetCounts();
    assert.equal(await writer.set(svc, ['192.0.2.77']), 'written');
    assert.equal(writer.conflicts, 1);
    assert.deepEqual(sim.deniedRequests(), []);
    assert.equal((sim.get('v1', 'Service', 'race', 'default') as V1Service).status?.loadBalancer?.ingress?.[0]?.ip, '192.0.2.77');
  });

  it('doctor finds every permission granted, then names the one taken away', async () => {
    const config = join(dir, 'doctor.yaml');
    writeFileSync(config, stringify({ interface: 'eth0', stateDir: join(dir, 'doctor-state'), kubernetes: { kubeconfig }, pools: [{ name: 'p', addresses: ['192.0.2.0/24'] }], vrrp: { enabled: false }, api: { listen: `127.0.0.1:${daemon!.port}` } }));
    const doctor = async () => {
      const r = await run(process.execPath, [cli, 'doctor', '--config', config, '--output', 'json']).then((x) => ({ ...x, code: 0 }), (e: { stdout: string; code: number }) => e);
      return { code: r.code, report: JSON.parse(r.stdout) as { checks: Array<{ group: string; name: string; status: string; message: string }> } };
    };
    const all = await doctor();
    const rbac = all.report.checks.filter((c) => c.group === 'rbac');
    assert.equal(rbac.length, required.length);
    assert.deepEqual(rbac.filter((c) => c.status !== 'ok'), []);

    try {
      // Without `update` on leases and without the kube-proxy ConfigMap: the first fails, the second warns.
      sim.setRules(rules.map((r) => (r.resources.includes('leases') ? { ...r, verbs: r.verbs.filter((v) => v !== 'update') } : r)).filter((r) => !r.resources.includes('configmaps')));
      const cut = await doctor();
      assert.equal(cut.code, 1);
      const lease = cut.report.checks.find((c) => c.name === 'get,create,update coordination.k8s.io/leases')!;
      assert.equal(lease.status, 'fail');
      assert.match(lease.message, /^denied: update coordination\.k8s\.io\/leases in namespace ipvs-lb; needed to one allocator among the LB hosts/);
      const cm = cut.report.checks.find((c) => c.name === 'get configmaps kube-proxy')!;
      assert.equal(cm.status, 'warn');
      const proxy = cut.report.checks.find((c) => c.group === 'kube-proxy')!;
      assert.equal(proxy.status, 'warn');
      assert.match(proxy.message, /cannot read kube-system\/kube-proxy: HTTP 403: configmaps "kube-proxy" is forbidden/);
    } finally {
      sim.setRules(rules);
    }
  });
});
