// The Prometheus surface: every scrape shows the kernel's counters as they are at that scrape (not the
// previous one), per virtual service and per real server; reconcile passes and ledger commits are counted.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Metrics, type MetricSources, type TrafficStats } from '../../src/daemon/metrics.js';
import { parseExposition } from '../support/prom.js';

const t = (n: number): TrafficStats => ({ connections: n, packetsIn: 10 * n, packetsOut: 0, bytesIn: 1000 * n, bytesOut: 0, cps: n % 7 });

function sources(kernel: { n: number; rsGone?: boolean }): MetricSources {
  return {
    pools: () => [{ name: 'default', size: 257n, used: 2, orphaned: 1, quarantined: 1 }],
    kubernetes: () => ({ connected: false, leader: true, watchRestarts: 4, errors: 3, byKind: [{ kind: 'Service', errors: 2 }, { kind: 'Node', errors: 1 }] }),
    vrrp: () => [{ group: 'a', state: 'MASTER', transitions: 2 }],
    virtualServices: async () => [{
      vip: '192.0.2.1', protocol: 'TCP', port: 80, service: 'default/whoami', stats: t(kernel.n),
      realServers: [
        { address: '198.51.100.11', node: 'node-1', weight: 1, activeConnections: 2, inactiveConnections: 5, stats: t(kernel.n - 1) },
        ...(kernel.rsGone ? [] : [{ address: '198.51.100.12', node: 'node-2', weight: 0, activeConnections: 0, inactiveConnections: 1, stats: t(1) }]),
      ],
    }],
  };
}

describe('metrics', () => {
  it('the first scrape already carries the kernel counters, per virtual service and real server', async () => {
    const m = new Metrics(sources({ n: 5 }));
    const e = parseExposition((await m.render()).body);
    const vs = { vip: '192.0.2.1', protocol: 'TCP', port: '80', service: 'default/whoami' };
    assert.equal(e.value('ipvs_lb_virtual_services'), 1);
    assert.equal(e.value('ipvs_lb_virtual_service_connections_total', vs), 5);
    assert.equal(e.value('ipvs_lb_virtual_service_packets_in_total', vs), 50);
    assert.equal(e.value('ipvs_lb_virtual_service_bytes_in_total', vs), 5000);
    assert.equal(e.value('ipvs_lb_virtual_service_connections_per_second', vs), 5);
    const rs1 = { ...vs, real_server: '198.51.100.11', node: 'node-1' };
    assert.equal(e.value('ipvs_lb_real_server_connections_total', rs1), 4);
    assert.equal(e.value('ipvs_lb_real_server_bytes_in_total', rs1), 4000);
    assert.equal(e.value('ipvs_lb_real_server_packets_in_total', rs1), 40);
    assert.equal(e.value('ipvs_lb_real_server_connections_per_second', rs1), 4);
    assert.equal(e.value('ipvs_lb_real_server_active_connections', rs1), 2);
    assert.equal(e.value('ipvs_lb_real_server_inactive_connections', rs1), 5);
    assert.equal(e.value('ipvs_lb_real_server_weight', { real_server: '198.51.100.12' }), 0);
    assert.equal(e.types.get('ipvs_lb_virtual_service_bytes_in_total'), 'counter');
    assert.equal(e.types.get('ipvs_lb_real_server_active_connections'), 'gauge');
  });

  it('each scrape mirrors the kernel: counters follow it, a removed real server disappears', async () => {
    const k = { n: 5, rsGone: false };
    const m = new Metrics(sources(k));
    await m.render();
    k.n = 9;
    k.rsGone = true;
    const e = parseExposition((await m.render()).body);
    assert.equal(e.value('ipvs_lb_virtual_service_connections_total'), 9);
    assert.equal(e.value('ipvs_lb_real_server_connections_total', { real_server: '198.51.100.11' }), 8);
    assert.deepEqual(e.find('ipvs_lb_real_server_weight', { real_server: '198.51.100.12' }), []);
  });

  it('caps the real servers with series of their own, always the same ones, and counts the rest', async () => {
    const vsOf = (vip: string, nodes: number) => ({
      vip, protocol: 'TCP', port: 80, service: `default/${vip}`, stats: t(3),
      realServers: Array.from({ length: nodes }, (_, i) => ({ address: `198.51.100.${20 + i}`, node: `node-${i}`, weight: 1, stats: t(1) })),
    });
    let max = 5;
    // The data plane lists virtual services in no particular order: the cap must not depend on it.
    let order = 0;
    const m = new Metrics({ ...sources({ n: 1 }), maxRealServers: () => max, virtualServices: async () => (order++ % 2 ? [vsOf('192.0.2.2', 3), vsOf('192.0.2.1', 3)] : [vsOf('192.0.2.1', 3), vsOf('192.0.2.2', 3)]) });
    const kept = (e: ReturnType<typeof parseExposition>) => e.find('ipvs_lb_real_server_weight', {}).map((x) => `${x.labels.vip} ${x.labels.real_server}`).sort();
    const first = parseExposition((await m.render()).body);
    assert.deepEqual(kept(first), ['192.0.2.1 198.51.100.20', '192.0.2.1 198.51.100.21', '192.0.2.1 198.51.100.22', '192.0.2.2 198.51.100.20', '192.0.2.2 198.51.100.21']);
    assert.equal(first.value('ipvs_lb_metrics_real_servers_omitted'), 1);
    assert.equal(first.find('ipvs_lb_virtual_service_connections_total', {}).length, 2, 'every virtual service keeps its series');
    const second = parseExposition((await m.render()).body);
    assert.deepEqual(kept(second), kept(first));
    max = 0;
    const none = parseExposition((await m.render()).body);
    assert.deepEqual(kept(none), []);
    assert.equal(none.value('ipvs_lb_metrics_real_servers_omitted'), 6);
  });

  it('pools, Kubernetes, VRRP, reconcile passes and allocation changes', async () => {
    const m = new Metrics(sources({ n: 1 }));
    m.observePass({ operations: 3, errors: 0, durationMs: 12, byKind: { 'add-service': 1, 'add-destination': 2 } }, 1_700_000_000_000);
    m.observePass({ operations: 1, errors: 1, durationMs: 700, byKind: { 'add-destination': 1 } }, 1_700_000_100_000);
    m.observeChanges([{ kind: 'allocate' }, { kind: 'allocate' }, { kind: 'release' }]);
    const e = parseExposition((await m.render()).body);
    assert.equal(e.value('ipvs_lb_pool_size', { pool: 'default' }), 257);
    assert.equal(e.value('ipvs_lb_pool_used', { pool: 'default' }), 2);
    assert.equal(e.value('ipvs_lb_pool_orphaned', { pool: 'default' }), 1);
    assert.equal(e.value('ipvs_lb_kubernetes_connected'), 0);
    assert.equal(e.value('ipvs_lb_leader'), 1);
    assert.equal(e.value('ipvs_lb_kubernetes_watch_restarts'), 4);
    assert.equal(e.value('ipvs_lb_kubernetes_api_errors_total', { kind: 'Service' }), 2);
    assert.equal(e.value('ipvs_lb_kubernetes_api_errors_total', { kind: 'Node' }), 1);
    assert.equal(e.value('ipvs_lb_vrrp_state', { group: 'a', state: 'MASTER' }), 1);
    assert.equal(e.value('ipvs_lb_vrrp_state', { group: 'a', state: 'BACKUP' }), 0);
    assert.equal(e.value('ipvs_lb_vrrp_transitions', { group: 'a' }), 2);
    assert.equal(e.value('ipvs_lb_reconcile_duration_seconds_count'), 2);
    assert.equal(e.value('ipvs_lb_reconcile_duration_seconds_bucket', { le: '0.05' }), 1);
    assert.equal(e.value('ipvs_lb_reconcile_operations_total', { op: 'add-destination' }), 3);
    assert.equal(e.value('ipvs_lb_reconcile_errors_total'), 1);
    // The failed pass does not move the last success.
    assert.equal(e.value('ipvs_lb_reconcile_last_success_timestamp_seconds'), 1_700_000_000);
    assert.equal(e.value('ipvs_lb_allocation_changes_total', { kind: 'allocate' }), 2);
    assert.equal(e.value('ipvs_lb_allocation_changes_total', { kind: 'release' }), 1);
  });
});
