// Prometheus metrics. Gauges that mirror state are filled at scrape time from the live parts (collect
// callbacks), so they can never drift from what the API shows; counters are bumped where things happen.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ReconcileResult } from './dataplane.js';

export interface MetricSources {
  pools: () => Array<{ name: string; size: bigint; used: number; orphaned: number; quarantined: number }>;
  kubernetes: () => { connected: boolean; leader: boolean; watchRestarts: number; errors: number };
  vrrp: () => Array<{ group: string; state: string; transitions: number }>;
  virtualServices: () => Promise<Array<{ vip: string; protocol: string; port: number; service: string; stats?: { connections: number; packetsIn: number; packetsOut: number; bytesIn: number; bytesOut: number; cps: number }; realServers: Array<{ address: string; node: string; weight: number; activeConnections?: number; inactiveConnections?: number }> }>>;
}

const VRRP_STATES = ['INIT', 'BACKUP', 'MASTER', 'FAULT', 'STOP'];

export class Metrics {
  readonly registry = new Registry();
  readonly reconcileDuration: Histogram;
  readonly reconcileOperations: Counter;
  readonly reconcileErrors: Counter;
  readonly reconcileLastSuccess: Gauge;
  readonly reconcileDrift: Counter;
  readonly apiErrors: Counter;
  readonly allocations: Counter;
  readonly decisionSeconds: Histogram;

  constructor(src: MetricSources) {
    const r = this.registry;
    const poolGauge = (name: string, help: string, pick: (p: ReturnType<MetricSources['pools']>[number]) => number) =>
      new Gauge({ name, help, labelNames: ['pool'], registers: [r], collect() {
        this.reset();
        for (const p of src.pools()) this.set({ pool: p.name }, pick(p));
      } });
    // An IPv6 /64 exceeds 2^53; Prometheus values are float64 anyway, so the size is reported rounded.
    poolGauge('ipvs_lb_pool_size', 'usable addresses in the pool', (p) => Number(p.size));
    poolGauge('ipvs_lb_pool_used', 'addresses allocated from the pool', (p) => p.used);
    poolGauge('ipvs_lb_pool_orphaned', 'allocated addresses no longer in the pool (kept until an operator acts)', (p) => p.orphaned);
    poolGauge('ipvs_lb_pool_quarantined', 'released addresses waiting out the quarantine', (p) => p.quarantined);

    this.reconcileDuration = new Histogram({ name: 'ipvs_lb_reconcile_duration_seconds', help: 'time of one reconcile pass', buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers: [r] });
    this.reconcileOperations = new Counter({ name: 'ipvs_lb_reconcile_operations_total', help: 'kernel operations applied', labelNames: ['op'], registers: [r] });
    this.reconcileErrors = new Counter({ name: 'ipvs_lb_reconcile_errors_total', help: 'kernel operations that failed', registers: [r] });
    this.reconcileLastSuccess = new Gauge({ name: 'ipvs_lb_reconcile_last_success_timestamp_seconds', help: 'end of the last reconcile pass without errors', registers: [r] });
    this.reconcileDrift = new Counter({ name: 'ipvs_lb_reconcile_drift_total', help: 'owned virtual services a resync found changed outside ipvs-lb (and restored)', registers: [r] });
    this.apiErrors = new Counter({ name: 'ipvs_lb_kubernetes_api_errors_total', help: 'failed Kubernetes API requests', labelNames: ['kind'], registers: [r] });
    this.decisionSeconds = new Histogram({
      name: 'ipvs_lb_allocation_decision_seconds', help: 'time from the start of an allocation burst until its ledger write is durable, observed once per Service in the burst',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5], registers: [r],
    });
    this.allocations = new Counter({ name: 'ipvs_lb_allocation_changes_total', help: 'allocation changes written to the ledger', labelNames: ['kind'], registers: [r] });

    new Gauge({ name: 'ipvs_lb_kubernetes_connected', help: '1 while every watch is established (0: fail static)', registers: [r], collect() { this.set(src.kubernetes().connected ? 1 : 0); } });
    new Gauge({ name: 'ipvs_lb_leader', help: '1 on the LB host that holds the allocator Lease', registers: [r], collect() { this.set(src.kubernetes().leader ? 1 : 0); } });
    new Gauge({ name: 'ipvs_lb_kubernetes_watch_restarts', help: 'watches restarted (timeouts, drops, errors)', registers: [r], collect() { this.set(src.kubernetes().watchRestarts); } });
    new Gauge({ name: 'ipvs_lb_vrrp_state', help: '1 for the current VRRP state of each group', labelNames: ['group', 'state'], registers: [r], collect() {
      this.reset();
      for (const g of src.vrrp()) for (const s of VRRP_STATES) this.set({ group: g.group, state: s }, g.state === s ? 1 : 0);
    } });
    new Gauge({ name: 'ipvs_lb_vrrp_transitions', help: 'VRRP state transitions of each group since start', labelNames: ['group'], registers: [r], collect() {
      this.reset();
      for (const g of src.vrrp()) this.set({ group: g.group }, g.transitions);
    } });

    // Traffic per virtual service and real server, read from the kernel at scrape time.
    const vsLabels = ['vip', 'protocol', 'port', 'service'];
    const vs = {
      conns: new Gauge({ name: 'ipvs_lb_virtual_service_connections_total', help: 'connections scheduled (kernel counter)', labelNames: vsLabels, registers: [r] }),
      pin: new Gauge({ name: 'ipvs_lb_virtual_service_packets_in_total', help: 'packets in (kernel counter)', labelNames: vsLabels, registers: [r] }),
      pout: new Gauge({ name: 'ipvs_lb_virtual_service_packets_out_total', help: 'packets out (kernel counter; 0 with DR, replies bypass the LB)', labelNames: vsLabels, registers: [r] }),
      bin: new Gauge({ name: 'ipvs_lb_virtual_service_bytes_in_total', help: 'bytes in (kernel counter)', labelNames: vsLabels, registers: [r] }),
      bout: new Gauge({ name: 'ipvs_lb_virtual_service_bytes_out_total', help: 'bytes out (kernel counter)', labelNames: vsLabels, registers: [r] }),
      cps: new Gauge({ name: 'ipvs_lb_virtual_service_connections_per_second', help: 'connection rate (kernel estimator, 2 s)', labelNames: vsLabels, registers: [r] }),
    };
    const rsLabels = [...vsLabels, 'real_server', 'node'];
    const rs = {
      active: new Gauge({ name: 'ipvs_lb_real_server_active_connections', help: 'established connections', labelNames: rsLabels, registers: [r] }),
      inactive: new Gauge({ name: 'ipvs_lb_real_server_inactive_connections', help: 'other connections', labelNames: rsLabels, registers: [r] }),
      weight: new Gauge({ name: 'ipvs_lb_real_server_weight', help: 'IPVS weight (0: draining)', labelNames: rsLabels, registers: [r] }),
    };
    new Gauge({ name: 'ipvs_lb_virtual_services', help: 'virtual services programmed', registers: [r], async collect() {
      const list = await src.virtualServices();
      this.set(list.length);
      for (const g of [...Object.values(vs), ...Object.values(rs)]) g.reset();
      for (const v of list) {
        const l = { vip: v.vip, protocol: v.protocol, port: String(v.port), service: v.service };
        if (v.stats) {
          vs.conns.set(l, v.stats.connections);
          vs.pin.set(l, v.stats.packetsIn);
          vs.pout.set(l, v.stats.packetsOut);
          vs.bin.set(l, v.stats.bytesIn);
          vs.bout.set(l, v.stats.bytesOut);
          vs.cps.set(l, v.stats.cps);
        }
        for (const s of v.realServers) {
          const rl = { ...l, real_server: s.address, node: s.node };
          rs.weight.set(rl, s.weight);
          if (s.activeConnections !== undefined) rs.active.set(rl, s.activeConnections);
          if (s.inactiveConnections !== undefined) rs.inactive.set(rl, s.inactiveConnections);
        }
      }
    } });
  }

  /** One reconcile pass: duration, operations by kind, failed operations, drift repaired. */
  observeReconcile(r: ReconcileResult): void {
    this.reconcileDuration.observe(r.durationMs / 1000);
    for (const [op, n] of Object.entries(r.byKind ?? {})) this.reconcileOperations.inc({ op }, n);
    if (r.errors > 0) this.reconcileErrors.inc(r.errors);
    else this.reconcileLastSuccess.set(Date.now() / 1000);
    if (r.drifted && r.drifted.length > 0) this.reconcileDrift.inc(r.drifted.length);
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
