// Wiring only: builds the parts from the config, connects them one way (watcher → ipam → status, model →
// data plane), serves the API, and handles signals. Decisions live in the modules.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import type { FastifyInstance } from 'fastify';
import { ensureGeneratedToken, readToken } from './api/auth.js';
import { buildApiServer } from './api/server.js';
import { loadConfig } from './config/load.js';
import { summarizeConfig } from './config/summary.js';
import type { Config, LogLevel } from './config/types.js';
import { daemonApiState } from './daemon/api-state.js';
import { DesiredOnlyDataPlane, type DataPlane, type DataPlaneHooks } from './daemon/dataplane.js';
import { Metrics } from './daemon/metrics.js';
import { desiredState } from './model/desired.js';
import type { DesiredState } from './model/types.js';
import { DurableIpam } from './store/allocator.js';
import { LedgerError } from './store/errors.js';
import { createLogger, type Logger } from './util/log.js';
import { TokenBucket } from './util/rate-limit.js';
import { AllocationController } from './watcher/allocation-controller.js';
import { makeKubeClients, KubeConfigError } from './watcher/client.js';
import { ClusterWatcher } from './watcher/cluster.js';
import { EventRecorder } from './watcher/events.js';
import { LeaderElector } from './watcher/lease.js';
import { isOurService } from './watcher/ours.js';
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
  let ipam: DurableIpam;
  try {
    ipam = DurableIpam.open({ path: join(config.stateDir, 'ledger.sqlite'), host: config.hostName, pools: config.pools, now: Date.now(), quarantineSeconds: config.ipam.releaseQuarantineSeconds });
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

  const dataPlane = o.makeDataPlane?.(config, log, { onReconcile: (r) => metrics.observeReconcile(r) }) ?? new DesiredOnlyDataPlane();
  const problems = new Map<string, string[]>();
  let desiredTimer: NodeJS.Timeout | undefined;
  // Until every informer has listed and start-up has re-confirmed the ledger, a desired state would be built
  // from partial caches (Services before Nodes: virtual services without real servers) and the data plane
  // would remove what the kernel rightly holds. So the first desired state is the one start-up computes.
  let desiredReady = false;
  const recomputeDesired = () => {
    if (desiredTimer || !desiredReady) return;
    desiredTimer = setTimeout(() => {
      desiredTimer = undefined;
      const d = computeDesired();
      problems.clear();
      for (const p of d.problems) problems.set(p.service, [...(problems.get(p.service) ?? []), `${p.reason}: ${p.message}`]);
      dataPlane.update(d);
    }, config.reconcile.coalesceMs);
  };

  const cluster = new ClusterWatcher(clients, log, { changed: () => {
    controller.schedule();
    recomputeDesired();
  } });
  const elector = new LeaderElector({
    api: clients.coordination, namespace: config.kubernetes.lease.namespace, name: config.kubernetes.lease.name,
    identity: config.hostName, durationSeconds: config.kubernetes.lease.durationSeconds,
    renewDeadlineSeconds: config.kubernetes.lease.renewDeadlineSeconds, retryPeriodSeconds: config.kubernetes.lease.retryPeriodSeconds,
    limiter: clients.limiter, log,
    onStartedLeading: (term) => {
      log.info({ term }, 'this host is now the allocator');
      controller.schedule();
    },
    onStoppedLeading: () => log.warn('this host is no longer the allocator'),
  });
  const status = new StatusWriter({ api: clients.core, limiter: clients.limiter, stillOurs: (s) => isOurService(s, config.kubernetes) });
  // Events get a budget of their own, as client-go's recorder has: feedback must never slow allocation.
  const events = new EventRecorder({ api: clients.core, limiter: new TokenBucket(config.kubernetes.qps, config.kubernetes.burst), host: config.hostName, log });
  const controller = new AllocationController({
    config, ipam, cluster, status, events, log,
    isLeader: () => elector.status.leader, term: () => elector.status.term,
    onAllocationsChanged: recomputeDesired,
    onDecisions: (ms, n) => {
      for (let i = 0; i < n; i++) metrics.decisionSeconds.observe(ms / 1000);
    },
  });

  function computeDesired(): DesiredState {
    const allocations = new Map<string, { address: string; pool: string }[]>();
    for (const uid of ipam.ipam.uids()) allocations.set(uid, ipam.ipam.allocationsOf(uid).map((a) => ({ address: a.address, pool: a.pool })));
    return desiredState({
      services: cluster.services.list().filter((s) => isOurService(s, config.kubernetes)),
      nodes: cluster.nodes.list(), endpointSlices: cluster.endpointSlices.list(), allocations, config, now: Date.now(),
      vrrpGroupOf: (vip, pool) => (config.vrrp.enabled ? groupForVip(vip, config.pools.find((p) => p.name === pool)?.vrrpGroup, config.vrrp.groups.map((g) => g.name)) : undefined),
    });
  }

  const metrics = new Metrics({
    pools: () => ipam.ipam.poolStats(),
    kubernetes: () => ({ connected: cluster.connected, leader: elector.status.leader, watchRestarts: cluster.stats.reduce((n, s) => n + s.watchRestarts, 0), errors: cluster.stats.reduce((n, s) => n + s.errors, 0) }),
    vrrp: () => dataPlane.vrrp().map((g) => ({ group: g.name, state: g.state, transitions: g.transitions })),
    virtualServices: async () => (await dataPlane.virtualServices()).map((v) => ({ ...v, service: v.service ?? '' })),
  });

  const reload = async (): Promise<{ ok: true; summary: string } | { ok: false; problems: string[] }> => {
    const r = await loadConfig(o.configPath);
    if (!r.ok) {
      log.error({ problems: r.problems }, 'config reload refused; the running config stays');
      return { ok: false, problems: r.problems };
    }
    const next = r.config;
    const restartOnly = (['stateDir', 'hostName'] as const).filter((k) => next[k] !== config[k]);
    if (JSON.stringify(next.kubernetes) !== JSON.stringify(config.kubernetes)) restartOnly.push('kubernetes' as never);
    if (JSON.stringify(next.api) !== JSON.stringify(config.api)) restartOnly.push('api' as never);
    if (restartOnly.length > 0) {
      const problems = restartOnly.map((k) => `${k}: changes only take effect on restart; reload refused`);
      log.error({ problems }, 'config reload refused');
      return { ok: false, problems };
    }
    ipam.reloadPools(next.pools, { quarantineSeconds: next.ipam.releaseQuarantineSeconds }, { now: Date.now(), term: elector.status.term });
    Object.assign(config, next);
    log.level = o.logLevel ?? config.logging.level;
    await dataPlane.reconfigure(config);
    controller.schedule();
    recomputeDesired();
    log.info('config reloaded');
    return { ok: true, summary: summarizeConfig(config) };
  };

  let api: FastifyInstance;
  try {
    api = await buildApiServer({
      state: daemonApiState({
        config: () => config, ipam, cluster, dataPlane, metrics: () => metrics,
        reconcile: async () => {
          if (desiredReady) dataPlane.update(computeDesired());
          return dataPlane.reconcileNow();
        },
        reload, problemsOf: (s) => problems.get(s) ?? [],
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
  cluster.start();
  elector.start();
  const expireTimer = setInterval(() => {
    try {
      if (ipam.expire({ now: Date.now(), term: elector.status.term }).length > 0) controller.schedule();
    } catch (err) {
      log.error({ err: (err as Error).message }, 'could not expire quarantines');
    }
    // NotReady grace periods end with time alone: recompute even without an event.
    recomputeDesired();
  }, 5000);
  const resyncTimer = setInterval(() => void dataPlane.reconcileNow().catch((err) => log.error({ err: String(err) }, 'periodic reconcile failed')), config.reconcile.resyncSeconds * 1000);

  const started = (async () => {
    // Leadership may take a retry period: give the election one round before start-up decides whether to
    // allocate, so a lone host does not wait for the first pass after start-up.
    await new Promise((r) => setTimeout(r, 200));
    await controller.start();
    desiredReady = true;
    dataPlane.update(computeDesired());
    await dataPlane.reconcileNow();
    if (process.env.NOTIFY_SOCKET) await execa('systemd-notify', ['--ready', `--pid=${process.pid}`], { reject: false });
    log.info('ready');
  })().catch((err) => log.error({ err: (err as Error).message }, 'start-up failed'));

  const onHup = () => void reload();
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
  clearTimeout(desiredTimer);
  await Promise.race([started, new Promise((r) => setTimeout(r, 2000))]);
  await elector.stop();
  log.debug('lease released');
  await cluster.stop();
  log.debug('watches stopped');
  await api.close();
  log.debug('API closed');
  await dataPlane.stop();
  ipam.close();
  log.info('stopped');
  return DaemonExit.ok;
}
