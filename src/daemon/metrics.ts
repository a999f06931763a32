// Prometheus metrics. Gauges that mirror state are filled at scrape time from the live parts (collect
// callbacks), so they can never drift from what the API shows; counters are bumped where things happen.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

import type { TrafficStats } from '../api/state.js';

export type { TrafficStats };

export interface MetricSources {
  pools: () => Array<{ name: string; size: bigint; used: number; orphaned: number; quarantined: number }>;
  kubernetes: () => { connected: boolean; leader: boolean; watchRestarts: number; errors: number; byKind?: Array<{ kind: string; errors: number }>; requests?: Record<string, number>; eventsDropped?: number };
  vrrp: () => Array<{ group: string; state: string; transitions: number }>;
  /** The supervised keepalived; undefined when VRRP is off. */
  keepalived?: () => { running: boolean; unexpectedExits: number } | undefined;
  virtualServices: () => Promise<Array<{ vip: string; protocol: string; port: number; service: string; stats?: TrafficStats; realServers: Array<{ address: string; node: string; weight: number; health?: string; activeConnections?: number; inactiveConnections?: number; stats?: TrafficStats }> }>>;
  /** How many real servers get series of their own (config metrics.maxRealServers, read at each scrape). */
  maxRealServers?: () => number;
  /** The health checker's counts (src/health). */
  health?: () => {
    targets: Record<string, Record<string, number>>;
    probes: Record<string, { success: number; failure: number; inconclusive: number }>;
    inFlight: number;
    late: number;
    draining: number;
    removed: number;
  };
}

const VRRP_STATES = ['INIT', 'BACKUP', 'MASTER', 'FAULT', 'STOP'];
const vsOrder = (v: { protocol: string; vip: string; port: number }) => `${v.protocol}/${v.vip}:${v.port}`;

export class Metrics {
  readonly registry = new Registry();
  readonly reconcileDuration: Histogram;
  readonly reconcileOperations: Counter;
  readonly reconcileErrors: Counter;
  readonly reconcileLastSuccess: Gauge;
  readonly reconcileDrift: Counter;
  readonly reconcileVerified: Counter;
  readonly apiErrors: Counter;
  readonly allocations: Counter;
  readonly decisionSeconds: Histogram;
  readonly healthProbeSeconds: Histogram;

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
    this.reconcileDrift = new Counter({ name: 'ipvs_lb_reconcile_drift_total', help: 'owned virtual services a resync or verification found changed outside ipvs-lb (and restored)', registers: [r] });
    this.reconcileVerified = new Counter({ name: 'ipvs_lb_reconcile_verified_total', help: 'services re-read from the kernel by the rolling verification between resyncs', registers: [r] });
    this.apiErrors = new Counter({ name: 'ipvs_lb_kubernetes_api_errors_total', help: 'failed list or watch requests to the Kubernetes API, by resource kind', labelNames: ['kind'], registers: [r], collect() {
      // Mirrors the watchers' own counts; a kind that never failed shows 0 once its watcher exists.
      const kinds = src.kubernetes().byKind;
      if (!kinds) return;
      this.reset();
      for (const k of kinds) this.inc({ kind: k.kind }, k.errors);
    } });
    this.decisionSeconds = new Histogram({
      name: 'ipvs_lb_allocation_decision_seconds', help: 'time from the start of an allocation burst until its ledger write is durable, observed once per Service in the burst',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5], registers: [r],
    });
    this.allocations = new Counter({ name: 'ipvs_lb_allocation_changes_total', help: 'allocation changes written to the ledger', labelNames: ['kind'], registers: [r] });
    this.healthProbeSeconds = new Histogram({
      name: 'ipvs_lb_health_probe_duration_seconds', help: 'time of one health probe until its answer or timeout, by kind (kube-proxy, service, dr)',
      labelNames: ['kind'], buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [r],
    });
    if (src.health) {
      const health = src.health;
      new Counter({ name: 'ipvs_lb_health_probes_total', help: 'health probes by kind and result (inconclusive: this host could not probe)', labelNames: ['kind', 'result'], registers: [r], collect() {
        this.reset();
        for (const [kind, c] of Object.entries(health().probes)) for (const [result, n] of Object.entries(c)) this.inc({ kind, result }, n);
      } });
      new Gauge({ name: 'ipvs_lb_health_targets', help: 'probe targets by kind and state (dr: (node, virtual service) units; unknown: not probed recently)', labelNames: ['kind', 'state'], registers: [r], collect() {
        this.reset();
        for (const [kind, st] of Object.entries(health().targets)) for (const [state, n] of Object.entries(st)) this.set({ kind, state }, n);
      } });
      new Gauge({ name: 'ipvs_lb_health_probes_in_flight', help: 'health probes running now (bounded by healthCheck.maxConcurrentProbes)', registers: [r], collect() { this.set(health().inFlight); } });
      new Counter({ name: 'ipvs_lb_health_probes_late_total', help: 'probes started more than an interval after they were due (concurrency bound too small)', registers: [r], collect() {
        this.reset();
        this.inc(health().late);
      } });
      new Gauge({ name: 'ipvs_lb_health_real_servers', help: 'real servers taken out by health checks: draining (weight 0) or removed', labelNames: ['phase'], registers: [r], collect() {
        const h = health();
        this.set({ phase: 'draining' }, h.draining);
        this.set({ phase: 'removed' }, h.removed);
      } });
    }

    new Gauge({ name: 'ipvs_lb_kubernetes_connected', help: '1 while every watch is established (0: fail static)', registers: [r], collect() { this.set(src.kubernetes().connected ? 1 : 0); } });
    new Gauge({ name: 'ipvs_lb_leader', help: '1 on the LB host that holds the allocator Lease', registers: [r], collect() { this.set(src.kubernetes().leader ? 1 : 0); } });
    new Gauge({ name: 'ipvs_lb_kubernetes_watch_restarts', help: 'watches restarted (timeouts, drops, errors)', registers: [r], collect() { this.set(src.kubernetes().watchRestarts); } });
    new Counter({ name: 'ipvs_lb_kubernetes_requests_total', help: 'API requests made, by rate-limit priority (critical: Lease, normal: lists, watches, status; background: Events)', labelNames: ['priority'], registers: [r], collect() {
      this.reset();
      for (const [priority, n] of Object.entries(src.kubernetes().requests ?? {})) this.inc({ priority }, n);
    } });
    new Counter({ name: 'ipvs_lb_kubernetes_events_dropped_total', help: 'Events not recorded because too many were waiting for the rate limiter', registers: [r], collect() {
      this.reset();
      this.inc(src.kubernetes().eventsDropped ?? 0);
    } });
    new Gauge({ name: 'ipvs_lb_vrrp_state', help: '1 for the current VRRP state of each group', labelNames: ['group', 'state'], registers: [r], collect() {
      this.reset();
      for (const g of src.vrrp()) for (const s of VRRP_STATES) this.set({ group: g.group, state: s }, g.state === s ? 1 : 0);
    } });
    new Gauge({ name: 'ipvs_lb_vrrp_transitions', help: 'VRRP state transitions of each group since start', labelNames: ['group'], registers: [r], collect() {
      this.reset();
      for (const g of src.vrrp()) this.set({ group: g.group }, g.transitions);
    } });

    new Gauge({ name: 'ipvs_lb_keepalived_up', help: '1 while the keepalived the daemon supervises runs (absent with VRRP off)', registers: [r], collect() {
      this.reset();
      const k = src.keepalived?.();
      if (k) this.set(k.running ? 1 : 0);
    } });
    new Gauge({ name: 'ipvs_lb_keepalived_unexpected_exits', help: 'keepalived exits the daemon did not ask for since start (each releases the VIPs and restarts keepalived with backoff)', registers: [r], collect() {
      this.reset();
      const k = src.keepalived?.();
      if (k) this.set(k.unexpectedExits);
    } });

    // Traffic per virtual service and real server, read from the kernel once per scrape (render()).
    const vsLabels = ['vip', 'protocol', 'port', 'service'];
    const rsLabels = [...vsLabels, 'real_server', 'node'];
    const trafficOf = (prefix: string, what: string, labelNames: string[]) => ({
      connections: new Counter({ name: `ipvs_lb_${prefix}_connections_total`, help: `connections scheduled to the ${what} (kernel counter)`, labelNames, registers: [r] }),
      packetsIn: new Counter({ name: `ipvs_lb_${prefix}_packets_in_total`, help: `packets in to the ${what} (kernel counter)`, labelNames, registers: [r] }),
      packetsOut: new Counter({ name: `ipvs_lb_${prefix}_packets_out_total`, help: `packets out of the ${what} (kernel counter; 0 with DR and TUN, whose replies bypass the LB)`, labelNames, registers: [r] }),
      bytesIn: new Counter({ name: `ipvs_lb_${prefix}_bytes_in_total`, help: `bytes in to the ${what} (kernel counter)`, labelNames, registers: [r] }),
      bytesOut: new Counter({ name: `ipvs_lb_${prefix}_bytes_out_total`, help: `bytes out of the ${what} (kernel counter; 0 with DR and TUN)`, labelNames, registers: [r] }),
      cps: new Gauge({ name: `ipvs_lb_${prefix}_connections_per_second`, help: `connection rate of the ${what} (kernel estimator over 2 s)`, labelNames, registers: [r] }),
    });
    const vs = trafficOf('virtual_service', 'virtual service', vsLabels);
    const rs = {
      ...trafficOf('real_server', 'real server', rsLabels),
      active: new Gauge({ name: 'ipvs_lb_real_server_active_connections', help: 'established connections', labelNames: rsLabels, registers: [r] }),
      inactive: new Gauge({ name: 'ipvs_lb_real_server_inactive_connections', help: 'other connections (closing, or UDP)', labelNames: rsLabels, registers: [r] }),
      weight: new Gauge({ name: 'ipvs_lb_real_server_weight', help: 'IPVS weight (0: draining)', labelNames: rsLabels, registers: [r] }),
      healthy: new Gauge({ name: 'ipvs_lb_real_server_healthy', help: 'health check verdict: 1 up, 0 down (absent: not probed)', labelNames: rsLabels, registers: [r] }),
    };
    const count = new Gauge({ name: 'ipvs_lb_virtual_services', help: 'virtual services in the kernel', registers: [r] });
    const omitted = new Gauge({ name: 'ipvs_lb_metrics_real_servers_omitted', help: 'real servers without series of their own this scrape (over metrics.maxRealServers; see the API)', registers: [r] });
    const setTraffic = (m: ReturnType<typeof trafficOf>, labels: Record<string, string>, t: TrafficStats) => {
      for (const k of ['connections', 'packetsIn', 'packetsOut', 'bytesIn', 'bytesOut'] as const) m[k].inc(labels, t[k]);
      m.cps.set(labels, t.cps);
    };
    // The kernel's counters are mirrored, not accumulated: every scrape starts from zero and copies them.
    this.refreshTraffic = async () => {
      const list = await src.virtualServices();
      for (const g of [...Object.values(vs), ...Object.values(rs), count]) g.reset();
      count.set(list.length);
      // Which real servers get series is decided in a stable order (virtual service, then address), so the
      // same ones keep their series from one scrape to the next.
      const max = src.maxRealServers?.() ?? Infinity;
      const total = list.reduce((n, v) => n + v.realServers.length, 0);
      omitted.set(Math.max(0, total - max));
      if (total > max) list.sort((a, b) => vsOrder(a).localeCompare(vsOrder(b)));
      let budget = max;
      for (const v of list) {
        const l = { vip: v.vip, protocol: v.protocol, port: String(v.port), service: v.service };
        if (v.stats) setTraffic(vs, l, v.stats);
        const servers = total > max ? [...v.realServers].sort((a, b) => a.address.localeCompare(b.address)).slice(0, Math.max(0, budget)) : v.realServers;
        budget -= servers.length;
        for (const s of servers) {
          const rl = { ...l, real_server: s.address, node: s.node };
          rs.weight.set(rl, s.weight);
          if (s.health === 'up' || s.health === 'down') rs.healthy.set(rl, s.health === 'up' ? 1 : 0);
          if (s.activeConnections !== undefined) rs.active.set(rl, s.activeConnections);
          if (s.inactiveConnections !== undefined) rs.inactive.set(rl, s.inactiveConnections);
          if (s.stats) setTraffic(rs, rl, s.stats);
        }
      }
    };
  }

  private readonly refreshTraffic: () => Promise<void>;

  /** After each reconcile pass: duration, operations by kind, failures, the time of the last clean one, and
   * owned virtual services a resync found changed out of band (and restored). */
  observePass(p: { operations: number; errors: number; durationMs: number; byKind: Record<string, number>; drifted?: string[]; verified?: number }, now = Date.now()): void {
    this.reconcileDuration.observe(p.durationMs / 1000);
    for (const [op, n] of Object.entries(p.byKind)) this.reconcileOperations.inc({ op }, n);
    if (p.errors > 0) this.reconcileErrors.inc(p.errors);
    else this.reconcileLastSuccess.set(now / 1000);
    if (p.drifted && p.drifted.length > 0) this.reconcileDrift.inc(p.drifted.length);
    if (p.verified) this.reconcileVerified.inc(p.verified);
  }

  /** After each ledger commit: allocation changes by kind (allocate, update, release, unquarantine). */
  observeChanges(changes: ReadonlyArray<{ kind: string }>): void {
    for (const c of changes) this.allocations.inc({ kind: c.kind });
  }

  async render(): Promise<{ contentType: string; body: string }> {
    // Before serializing: prom-client reads all metrics at once, so values filled by another metric's
    // collect callback would show the previous scrape's traffic.
    await this.refreshTraffic();
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
