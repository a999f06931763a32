// Wiring only: builds the parts from the config, connects them one way (watcher → ipam → status, model →
// data plane), serves the API, and handles signals. Decisions live in the modules.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import type { FastifyInstance } from 'fastify';
import { ensureGeneratedToken, readToken } from './api/auth.js';
import { buildApiServer } from './api/server.js';
import type { StatusView } from './api/state.js';
import { loadConfig } from './config/load.js';
import { summarizeConfig } from './config/summary.js';
import type { Config, LogLevel } from './config/types.js';
import { daemonApiState, withHealth } from './daemon/api-state.js';
import { DesiredOnlyDataPlane, type DataPlane, type DataPlaneHooks } from './daemon/dataplane.js';
import { Metrics } from './daemon/metrics.js';
import { DesiredFeed } from './daemon/desired-feed.js';
import type { ModelInputs } from './model/desired.js';
import type { ModelProblem } from './model/types.js';
import { DrPathKernel, HealthMonitor, type BackendsChange } from './health/index.js';
import type { Change } from './ipam/types.js';
import { DurableIpam } from './store/allocator.js';
import { LedgerError } from './store/errors.js';
import { createLogger, type Logger } from './util/log.js';
import { version } from './util/version.js';
import { AllocationController } from './watcher/allocation-controller.js';
import { makeKubeClients, KubeConfigError } from './watcher/client.js';
import { ClusterWatcher } from './watcher/cluster.js';
import { EventRecorder } from './watcher/events.js';
import { LeaderElector } from './watcher/lease.js';
import { isOurService } from './watcher/ours.js';
import { ProblemEvents } from './watcher/problems.js';
import { SliceIndex } from './watcher/slice-index.js';
import { StatusWriter } from './watcher/status.js';
import { groupForVip } from './vrrp/groups.js';

export interface DaemonOptions {
  configPath: string;
  logLevel?: LogLevel;
  /** Builds the kernel side; without it the daemon allocates and reports but programs nothing. */
  makeDataPlane?: (config: Config, log: Logger, hooks: DataPlaneHooks) => DataPlane;
  /** Resolves to stop the daemon (tests); signals do the same in production. */
  stopSignal?: Promise<void>;
  /** Called once the API listens, with its address (tests use port 0). */
  onListening?: (address: { host: string; port: number }) => void;
}

export const DaemonExit = { ok: 0, config: 1, ledger: 4, kubeconfig: 5, api: 6 } as const;

export async function runDaemon(o: DaemonOptions): Promise<number> {
  const loaded = await loadConfig(o.configPath);
  if (!loaded.ok) {
    process.stderr.write(`ipvs-lb daemon: invalid configuration ${o.configPath}:\n  ${loaded.problems.join('\n  ')}\n`);
    return DaemonExit.config;
  }
  // One object for the whole run: a reload assigns into it, so every part sees the new values.
  const config = loaded.config;
  const log = createLogger(o.logLevel ?? config.logging.level);
  log.info({ config: o.configPath, host: config.hostName }, 'starting');

  mkdirSync(config.stateDir, { recursive: true, mode: 0o750 });
  // Set once the desired-state feed exists: a Service whose addresses change is recomputed on its own.
  let noteAllocations: (changes: readonly Change[]) => void = () => undefined;
  let ipam: DurableIpam;
  try {
    ipam = DurableIpam.open({
      path: join(config.stateDir, 'ledger.sqlite'), host: config.hostName, pools: config.pools, now: Date.now(), quarantineSeconds: config.ipam.releaseQuarantineSeconds,
      onCommit: (changes) => {
        metrics.observeChanges(changes);
        noteAllocations(changes);
      },
    });
  } catch (err) {
    log.fatal({ err: (err as Error).message }, 'cannot open the allocation ledger');
    return err instanceof LedgerError ? err.exitCode : DaemonExit.ledger;
  }

  let token: string;
  let clients;
  try {
    token = config.api.tokenFile ? readToken(config.api.tokenFile) : ensureGeneratedToken(join(config.stateDir, 'api-token'));
    clients = makeKubeClients(config.kubernetes);
  } catch (err) {
    log.fatal({ err: (err as Error).message }, 'cannot start');
    ipam.close();
    return err instanceof KubeConfigError ? DaemonExit.kubeconfig : DaemonExit.api;
  }

  let lastPass: StatusView['lastReconcile'] = null;
  const dataPlane: DataPlane = o.makeDataPlane?.(config, log, {
    onPass: (r) => {
      metrics.observePass(r);
      lastPass = { at: new Date().toISOString(), operations: r.operations, errors: r.errors, durationMs: r.durationMs };
    },
  }) ?? new DesiredOnlyDataPlane();
  const startedAtMs = Date.now();
  const startedAt = new Date(startedAtMs).toISOString();
  const problems = new Map<string, string[]>();
  const describeProblems = (list: readonly ModelProblem[]) => list.map((p) => `${p.reason}: ${p.message}`);
  // Until every informer has listed once and the ledger is re-confirmed, a desired state would lack nodes or
  // Services and the kernel would lose real servers it still serves: nothing reaches the data plane before
  // feed.start().
  const slices = new SliceIndex();
  const feed: DesiredFeed = new DesiredFeed({
    inputs: () => modelInputs(),
    source: {
      service: (id) => {
        const slash = id.indexOf('/');
        const svc = cluster.services.get(id.slice(0, slash), id.slice(slash + 1));
        return svc && isOurService(svc, config.kubernetes) ? svc : undefined;
      },
      slices: (id) => slices.of(id),
      allocations: (uid) => ipam.ipam.allocationsOf(uid).map((a) => ({ address: a.address, pool: a.pool })),
    },
    health: { setCandidates: (v) => health.setCandidates(v), apply: (c) => health.apply(c), patchCandidates: (set, remove) => health.patchCandidates(set, remove) },
    dataPlane,
    onProblems: (all, some) => {
      if (all) {
        problems.clear();
        for (const p of all) problems.set(p.service, [...(problems.get(p.service) ?? []), ...describeProblems([p])]);
        problemEvents.update(all);
      }
      if (some) {
        for (const [id, list] of some) {
          if (list.length === 0) problems.delete(id);
          else problems.set(id, describeProblems(list));
        }
        problemEvents.updateFor(some);
      }
    },
    coalesceMs: () => config.reconcile.coalesceMs,
    log,
  });
  noteAllocations = (changes) => feed.servicesChanged(changes.flatMap((c) => (c.kind === 'unquarantine' ? [] : [`${c.allocation.namespace}/${c.allocation.name}`])));
  const recomputeDesired = () => feed.everything();
  const serviceId = (o: { metadata?: { namespace?: string; name?: string } } | undefined) => (o?.metadata?.name === undefined ? undefined : `${o.metadata.namespace ?? ''}/${o.metadata.name}`);
  const idsOf = (...objs: Array<{ metadata?: { namespace?: string; name?: string } } | undefined>) => objs.map(serviceId).filter((x): x is string => x !== undefined);

  const cluster = new ClusterWatcher(clients, log, {
    service: (_t, svc, old) => {
      controller.noteService(svc, old);
      feed.servicesChanged(idsOf(svc, old));
    },
    endpointSlice: (t, slice, old) => feed.servicesChanged(slices.note(t, slice, old)),
    allServices: () => controller.schedule(true),
    everything: recomputeDesired,
  }, { resyncSeconds: config.kubernetes.resyncSeconds });
  const elector = new LeaderElector({
    api: clients.coordination, namespace: config.kubernetes.lease.namespace, name: config.kubernetes.lease.name,
    identity: config.hostName, durationSeconds: config.kubernetes.lease.durationSeconds,
    renewDeadlineSeconds: config.kubernetes.lease.renewDeadlineSeconds, retryPeriodSeconds: config.kubernetes.lease.retryPeriodSeconds,
    limiter: clients.limiter, log,
    onStartedLeading: (term) => {
      log.info({ term }, 'this host is now the allocator');
      controller.schedule(true);
      problemEvents.reportPending();
    },
    onStoppedLeading: () => log.warn('this host is no longer the allocator'),
  });
  const status = new StatusWriter({ api: clients.core, limiter: clients.limiter, stillOurs: (s) => isOurService(s, config.kubernetes) });
  // Events take the shared budget at the lowest priority: feedback never slows allocation, and the QPS holds.
  const events = new EventRecorder({ api: clients.core, limiter: clients.limiter, host: config.hostName, log });
  const problemEvents = new ProblemEvents({ events, service: (ns, name) => cluster.services.get(ns, name), isLeader: () => elector.leadsNow() });
  const controller = new AllocationController({
    config, ipam, cluster, status, events, log,
    isLeader: () => elector.leadsNow(), term: () => elector.status.term,
    onDecisions: (ms, n) => {
      for (let i = 0; i < n; i++) metrics.decisionSeconds.observe(ms / 1000);
    },
  });

  // Events on a Service when its last healthy backend goes and when one returns, from the host that carries
  // the traffic (the VRRP master of the VIP's group), so LB hosts do not report the same thing twice.
  const recordBackends = (changes: BackendsChange[]) => {
    const groups = config.vrrp.enabled ? new Map(dataPlane.vrrp().map((g) => [g.name, g.state])) : undefined;
    for (const c of changes) {
      if (groups && groups.get(c.vrrpGroup ?? '') !== 'MASTER') continue;
      const [ns, name] = c.service.split('/') as [string, string];
      const svc = cluster.services.get(ns, name);
      if (svc?.metadata?.uid === c.serviceUid) void events.record(svc, c.healthy ? 'HealthyBackends' : 'NoHealthyBackends', c.message);
    }
  };
  const health = new HealthMonitor({
    config: () => config, log, onChange: () => recomputeDesired(), onBackends: recordBackends,
    onProbe: (kind, outcome) => metrics.healthProbeSeconds.observe({ kind }, outcome.latencyMs / 1000),
  });

  function modelInputs(): ModelInputs {
    const allocations = new Map<string, { address: string; pool: string }[]>();
    for (const uid of ipam.ipam.uids()) allocations.set(uid, ipam.ipam.allocationsOf(uid).map((a) => ({ address: a.address, pool: a.pool })));
    return {
      services: cluster.services.list().filter((s) => isOurService(s, config.kubernetes)),
      nodes: cluster.nodes.list(), endpointSlices: cluster.endpointSlices.list(), allocations, config, now: Date.now(),
      vrrpGroupOf: (vip, pool) => (config.vrrp.enabled ? groupForVip(vip, config.pools.find((p) => p.name === pool)?.vrrpGroup, config.vrrp.groups.map((g) => g.name)) : undefined),
    };
  }

  const healthOf = (node: string, vsKey: string) => health.view(node, vsKey);
  // Every host asks for the Lease each retry period: no answer for a renew deadline means the server is gone,
  // even while the watches still look connected (a server that stopped answering sends no reset).
  const apiProblem = (): string | undefined => {
    const silentMs = Date.now() - (elector.status.lastContactAt ?? startedAtMs);
    if (silentMs <= config.kubernetes.lease.renewDeadlineSeconds * 1000) return undefined;
    return `no answer to Lease requests for ${Math.round(silentMs / 1000)} s${elector.status.lastError ? ` (${elector.status.lastError})` : ''}`;
  };
  const metrics = new Metrics({
    pools: () => ipam.ipam.poolStats(),
    kubernetes: () => ({
      connected: cluster.connected && apiProblem() === undefined, leader: elector.status.leader, watchRestarts: cluster.stats.reduce((n, s) => n + s.watchRestarts, 0), errors: cluster.stats.reduce((n, s) => n + s.errors, 0),
      byKind: cluster.stats.map((s) => ({ kind: s.kind, errors: s.errors })),
      requests: { ...clients.limiter.granted }, eventsDropped: events.dropped,
    }),
    vrrp: () => dataPlane.vrrp().map((g) => ({ group: g.name, state: g.state, transitions: g.transitions })),
    keepalived: () => dataPlane.keepalived?.(),
    virtualServices: async () => withHealth(await dataPlane.virtualServices(), healthOf).map((v) => ({ ...v, service: v.service ?? '' })),
    health: () => health.stats(),
    maxRealServers: () => config.metrics.maxRealServers,
  });

  type ReloadResult = { ok: true; summary: string } | { ok: false; problems: string[] };
  // Nothing is half-applied: the new file is validated whole, then the fallible outside step (keepalived
  // checks and installs its new config atomically) runs before anything in memory changes, and a failed
  // ledger write puts keepalived's config back.
  const reloadOnce = async (): Promise<ReloadResult> => {
    const refuse = (problems: string[]): ReloadResult => {
      log.error({ problems }, 'config reload refused; the running config stays');
      return { ok: false, problems };
    };
    const r = await loadConfig(o.configPath);
    if (!r.ok) return refuse(r.problems);
    const next = r.config;
    // The VIP interface is opened once at start, like the ledger, the watches and the listener.
    const restartOnly: string[] = (['stateDir', 'hostName', 'interface'] as const).filter((k) => next[k] !== config[k]);
    if (JSON.stringify(next.kubernetes) !== JSON.stringify(config.kubernetes)) restartOnly.push('kubernetes');
    if (JSON.stringify(next.api) !== JSON.stringify(config.api)) restartOnly.push('api');
    if (next.vrrp.enabled !== config.vrrp.enabled) restartOnly.push('vrrp.enabled');
    if (restartOnly.length > 0) return refuse(restartOnly.map((k) => `${k}: changes only take effect on restart; reload refused`));
    try {
      await dataPlane.reconfigure(next);
    } catch (err) {
      return refuse([`vrrp: ${(err as Error).message}`]);
    }
    try {
      ipam.reloadPools(next.pools, { quarantineSeconds: next.ipam.releaseQuarantineSeconds }, { now: Date.now(), term: elector.status.term });
    } catch (err) {
      await dataPlane.reconfigure(config).catch((e: unknown) => log.error({ err: String(e) }, 'could not restore the previous keepalived configuration'));
      return refuse([`pools: cannot record the new pools in the ledger: ${(err as Error).message}`]);
    }
    Object.assign(config, next);
    log.level = o.logLevel ?? config.logging.level;
    controller.schedule(true);
    recomputeDesired();
    log.info('config reloaded');
    return { ok: true, summary: summarizeConfig(config) };
  };
  // One reload at a time: a SIGHUP and an API call never interleave.
  let reloading: Promise<unknown> = Promise.resolve();
  const reload = (): Promise<ReloadResult> => {
    const run = reloading.then(reloadOnce, reloadOnce);
    reloading = run.catch(() => undefined);
    return run;
  };

  let api: FastifyInstance;
  try {
    api = await buildApiServer({
      state: daemonApiState({
        config: () => config, ipam, cluster, dataPlane, metrics: () => metrics,
        reconcile: async () => {
          if (!feed.started) throw Object.assign(new Error('the daemon is still starting (no complete view of the cluster yet); nothing was reconciled'), { statusCode: 503 });
          feed.rebuildNow();
          return dataPlane.reconcileNow();
        },
        reload, problemsOf: (s) => problems.get(s) ?? [],
        realServerHealth: healthOf, extraMessages: () => health.problems(),
        status: () => ({
          host: config.hostName, version, startedAt,
          allocator: { leader: elector.status.leader, holder: elector.status.holder ?? null, term: elector.status.term },
          services: { allocated: ipam.ipam.serviceCount, withProblems: problems.size },
          lastReconcile: lastPass,
        }),
        apiProblem,
      }),
      token, listen: config.api.listen, tls: config.api.tls,
    });
    await api.listen({ host: config.api.listen.host, port: config.api.listen.port });
    const addr = api.server.address() as { address: string; port: number };
    o.onListening?.({ host: addr.address, port: addr.port });
    log.info({ listen: `${addr.address}:${addr.port}` }, 'API listening');
  } catch (err) {
    log.fatal({ err: (err as Error).message }, 'cannot start the API');
    ipam.close();
    return DaemonExit.api;
  }

  await dataPlane.start();
  // Probing steers traffic, so it runs only with a data plane that carries some: a --no-kernel daemon
  // sends no probe at all.
  if (o.makeDataPlane) {
    // The DR path check and drain detection need the kernel; without it drains end by their grace period.
    try {
      health.attachKernel(await DrPathKernel.open({ config: () => config, log }));
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'no DR path check: IPVS not reachable for the health checker');
    }
    health.start();
  }
  cluster.start();
  elector.start();
  const expireTimer = setInterval(() => {
    try {
      if (ipam.expire({ now: Date.now(), term: elector.status.term }).length > 0) controller.schedule(true);
    } catch (err) {
      log.error({ err: (err as Error).message }, 'could not expire quarantines');
    }
  }, 5000);
  const resyncTimer = setInterval(() => {
    if (feed.started) void dataPlane.reconcileNow().catch((err) => log.error({ err: String(err) }, 'periodic reconcile failed'));
  }, config.reconcile.resyncSeconds * 1000);
  // Between resyncs, a few services at a time are re-read, so drift on a small table is repaired within a
  // second and a large one is covered without a whole-table read every time. Skipped while a pass is queued.
  let verifying = false;
  const verifyTimer = config.reconcile.verifyIntervalMs > 0 && dataPlane.verifyNow
    ? setInterval(() => {
      if (!feed.started || verifying) return;
      verifying = true;
      void dataPlane.verifyNow!(config.reconcile.verifyServices)
        .catch((err: unknown) => log.error({ err: String(err) }, 'verification failed'))
        .finally(() => (verifying = false));
    }, config.reconcile.verifyIntervalMs)
    : undefined;

  const started = (async () => {
    // Leadership may take a retry period: give the election one round before start-up decides whether to
    // allocate, so a lone host does not wait for the first pass after start-up.
    await new Promise((r) => setTimeout(r, 200));
    await controller.start();
    feed.start();
    await dataPlane.reconcileNow();
    if (process.env.NOTIFY_SOCKET) await execa('systemd-notify', ['--ready', `--pid=${process.pid}`], { reject: false });
    log.info('ready');
  })().catch((err) => log.error({ err: (err as Error).message }, 'start-up failed'));

  const onHup = () => void reload().catch((err: unknown) => log.error({ err: String(err) }, 'config reload failed'));
  process.on('SIGHUP', onHup);
  const stop = new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
    void o.stopSignal?.then(() => resolve());
  });
  await stop;
  log.info('stopping');
  process.off('SIGHUP', onHup);
  clearInterval(expireTimer);
  clearInterval(resyncTimer);
  clearInterval(verifyTimer);
  feed.stop();
  await Promise.race([started, new Promise((r) => setTimeout(r, 2000))]);
  await elector.stop();
  log.debug('lease released');
  await cluster.stop();
  log.debug('watches stopped');
  await api.close();
  log.debug('API closed');
  await health.stop();
  await dataPlane.stop();
  ipam.close();
  log.info('stopped');
  return DaemonExit.ok;
}
