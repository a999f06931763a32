// The operator commands that read the daemon's API: status, pools, allocations, services, show, reconcile.
// When the API does not answer, the reading ones fall back to the ledger opened read-only (the daemon is
// down), say so on stderr, and show what the ledger holds.
import type { Command } from 'commander';
import type { AllocationRow, HealthView, Page, PoolUsage, ServiceView, StatusView, VirtualServiceView, VrrpGroupView } from '../api/state.js';
import type { Config } from '../config/types.js';
import { ApiUnreachableError, apiClient, CliError, configFor, type ApiClient } from './api-client.js';
import type { CliContext } from './context.js';
import { ExitCode } from './exit-codes.js';
import { openLedgerView, type LedgerView } from './offline.js';
import { outputOption, render, table, type OutputFormat } from './output.js';

type Offline = (view: LedgerView, why: ApiUnreachableError) => Promise<void> | void;

/**
 * Runs `online` against the API; with `offline`, a daemon that does not answer is replaced by its ledger.
 * Every CliError becomes a message on stderr and its exit code.
 */
async function withApi(ctx: CliContext, online: (api: ApiClient, config: Config) => Promise<void>, offline?: Offline): Promise<void> {
  let config: Config | undefined;
  try {
    config = await configFor(ctx.configPath());
    await online(apiClient(config), config);
  } catch (err) {
    if (err instanceof ApiUnreachableError && offline && config) {
      let view: LedgerView;
      try {
        view = openLedgerView(config);
      } catch (lerr) {
        ctx.err(`ipvs-lb: ${err.message}\nipvs-lb: and the ledger cannot be read either: ${(lerr as Error).message}`);
        ctx.exit(ExitCode.unavailable);
        return;
      }
      try {
        ctx.err(`ipvs-lb: the daemon's API at ${err.base} does not answer (${err.reason}); showing the ledger ${view.path}, opened read-only`);
        await offline(view, err);
      } finally {
        view.close();
      }
      return;
    }
    if (err instanceof CliError) {
      ctx.err(`ipvs-lb: ${err.message}`);
      ctx.exit(err.exitCode);
      return;
    }
    throw err;
  }
}

const poolsTable = (pools: PoolUsage[]) =>
  table(['POOL', 'SIZE', 'USED', 'FREE', 'ORPHANED', 'AUTO', 'ADDRESSES'], pools.map((p) => [p.name, p.size, p.used, p.free, p.orphaned, p.autoAssign ? 'yes' : 'no', p.addresses.join(',')]));

const allocationsTable = (rows: AllocationRow[]) =>
  table(['ADDRESS', 'POOL', 'SERVICE', 'PORTS', 'SHARING', 'SINCE', 'ORPHANED'], rows.map((a) => [a.address, a.pool, `${a.namespace}/${a.name}`, a.ports.join(','), a.sharingKey, a.allocatedAt, a.orphaned ? 'yes' : '']));

const vsTable = (vss: VirtualServiceView[]) =>
  table(['VIRTUAL SERVICE', 'SERVICE', 'SCHED', 'FWD', 'CONNS', 'REAL SERVERS (node addr weight health active)'], vss.map((v) => [
    v.key, v.service, v.scheduler, v.forwarding, v.stats?.connections,
    v.realServers.map((r) => `${r.node} ${r.address}:${r.port} w${r.weight} ${r.health}${r.activeConnections !== undefined ? ` ${r.activeConnections}` : ''}`).join('; ') || '(none)',
  ]));

async function allAllocations(page: (q: URLSearchParams) => Promise<Page<AllocationRow>>, filter: { namespace?: string; pool?: string; address?: string }): Promise<AllocationRow[]> {
  const q = new URLSearchParams({ limit: '1000' });
  if (filter.namespace) q.set('namespace', filter.namespace);
  if (filter.pool) q.set('pool', filter.pool);
  if (filter.address) q.set('address', filter.address);
  const items: AllocationRow[] = [];
  for (let offset = 0; ; offset += 1000) {
    q.set('offset', String(offset));
    const p = await page(q);
    items.push(...p.items);
    if (items.length >= p.total || p.items.length === 0) return items;
  }
}

const serviceId = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-a-z0-9]*[a-z0-9])?)$/;

export function registerOperate(program: Command, ctx: CliContext): void {
  program.command('status').description('one screen: readiness, allocator role, VRRP state per group, pool usage, Services, last reconcile')
    .addOption(outputOption())
    .action(async (o: { output: OutputFormat }) => {
      await withApi(ctx, async (api) => {
        const [health, status, vrrp, pools, vss] = await Promise.all([
          // Not ready (503) is a state to show, not a failure to reach the daemon.
          api.getAccepting<HealthView>('/readyz', [503]),
          api.get<StatusView>('/api/v1/status'),
          api.get<{ items: VrrpGroupView[] }>('/api/v1/vrrp'),
          api.get<{ items: PoolUsage[] }>('/api/v1/pools'),
          api.get<{ items: VirtualServiceView[] }>('/api/v1/virtual-services'),
        ]);
        const data = { source: 'api', health, ...status, vrrp: vrrp.items, pools: pools.items, virtualServices: vss.items.length };
        const last = status.lastReconcile;
        ctx.out(render(o.output, data, () => [
          `host ${status.host} (ipvs-lb ${status.version}, up since ${status.startedAt})`,
          `ready: ${health.ready ? 'yes' : 'NO'}  (ledger ${health.checks.ledger ? 'ok' : 'FAIL'}, kernel ${health.checks.kernel ? 'ok' : 'FAIL'}, reconciled ${health.checks.reconciledOnce ? 'yes' : 'not yet'}, kubernetes ${health.checks.kubernetes ? 'connected' : 'UNREACHABLE'})`,
          ...health.messages.map((m) => `  ! ${m}`),
          `allocator: ${status.allocator.leader ? `this host (term ${status.allocator.term})` : status.allocator.holder ? `${status.allocator.holder}` : 'nobody yet'}`,
          `services: ${status.services.allocated} with addresses, ${status.services.withProblems} with problems; virtual services in the kernel: ${vss.items.length}`,
          `last reconcile: ${last ? `${last.at}, ${last.operations} operations, ${last.errors} errors, ${last.durationMs} ms` : 'none yet'}`,
          '',
          vrrp.items.length ? table(['VRRP GROUP', 'STATE', 'SINCE', 'TRANSITIONS', 'VIPS'], vrrp.items.map((g) => [g.name, g.state, g.since, g.transitions, g.vips.length])) : 'vrrp: no groups',
          '',
          poolsTable(pools.items),
        ].join('\n')));
        if (!health.ready) ctx.exit(ExitCode.failed);
      }, (view, why) => {
        const pools = view.pools();
        const allocated = view.allocations({ offset: 0, limit: 1 }).total;
        const lastChange = view.lastEvent() ?? null;
        const data = { source: 'ledger', daemon: { reachable: false, api: why.base, error: why.reason }, ledger: view.path, pools, allocations: allocated, lastChange };
        ctx.out(render(o.output, data, () => [
          `daemon: NOT RUNNING (no answer from ${why.base}: ${why.reason})`,
          `ledger ${view.path}: ${allocated} allocation${allocated === 1 ? '' : 's'}${lastChange ? `; last change ${lastChange.at}: ${lastChange.action} ${lastChange.address ?? ''} ${lastChange.service ?? ''}`.trimEnd() : ''}`,
          '',
          poolsTable(pools),
        ].join('\n')));
        // The question `status` answers is "is this LB host serving?": not while its daemon is down.
        ctx.exit(ExitCode.unavailable);
      });
    });

  program.command('pools').description('pools with size, used, free and orphaned addresses').addOption(outputOption())
    .action(async (o: { output: OutputFormat }) => {
      const show = (items: PoolUsage[]) => ctx.out(render(o.output, items, () => poolsTable(items)));
      await withApi(ctx, async (api) => show((await api.get<{ items: PoolUsage[] }>('/api/v1/pools')).items), (view) => show(view.pools()));
    });

  program.command('allocations').description('allocated addresses').addOption(outputOption())
    .option('-n, --namespace <ns>', 'only this namespace').option('--pool <name>', 'only this pool').option('--address <ip>', 'only this address')
    .action(async (o: { output: OutputFormat; namespace?: string; pool?: string; address?: string }) => {
      const show = (items: AllocationRow[]) => ctx.out(render(o.output, items, () => allocationsTable(items)));
      await withApi(
        ctx,
        async (api) => show(await allAllocations((q) => api.get<Page<AllocationRow>>(`/api/v1/allocations?${q}`), o)),
        async (view) => show(await allAllocations(async (q) => view.allocations({ ...o, offset: Number(q.get('offset')), limit: 1000 }), o)),
      );
    });

  program.command('services').description('virtual services in the kernel, with real servers and traffic').addOption(outputOption())
    .action(async (o: { output: OutputFormat }) => {
      await withApi(ctx, async (api) => {
        const r = await api.get<{ items: VirtualServiceView[] }>('/api/v1/virtual-services');
        ctx.out(render(o.output, r.items, () => vsTable(r.items)));
      });
    });

  program.command('show').description('one Service: its addresses, virtual services and real servers').argument('<namespace/name>').addOption(outputOption())
    .action(async (id: string, o: { output: OutputFormat }) => {
      const m = serviceId.exec(id);
      if (!m) {
        ctx.err(`ipvs-lb show: expected NAMESPACE/NAME (got ${JSON.stringify(id)})`);
        ctx.exit(ExitCode.usage);
        return;
      }
      const [namespace, name] = [m[1]!, m[3]!];
      await withApi(ctx, async (api) => {
        const v = await api.get<ServiceView>(`/api/v1/services/${namespace}/${name}`);
        ctx.out(render(o.output, v, () => [
          `service ${v.namespace}/${v.name}`,
          allocationsTable(v.allocations),
          '',
          v.virtualServices.length ? vsTable(v.virtualServices) : 'no virtual service in the kernel',
          ...v.problems.map((p) => `! ${p}`),
        ].join('\n')));
      }, (view) => {
        const allocations = view.service(namespace, name);
        if (allocations.length === 0) {
          ctx.err(`ipvs-lb: the ledger holds no address for service ${namespace}/${name}`);
          ctx.exit(ExitCode.failed);
          return;
        }
        const v = { namespace, name, allocations, source: 'ledger' };
        ctx.out(render(o.output, v, () => [`service ${namespace}/${name} (from the ledger; the kernel view needs the daemon)`, allocationsTable(allocations)].join('\n')));
      });
    });

  program.command('reconcile').description('make the daemon compare the kernel with the desired state now').addOption(outputOption())
    .action(async (o: { output: OutputFormat }) => {
      await withApi(ctx, async (api) => {
        const r = await api.post<{ operations: number; errors: number; durationMs: number }>('/api/v1/reconcile');
        ctx.out(render(o.output, r, () => `reconciled: ${r.operations} operations, ${r.errors} errors, ${r.durationMs} ms`));
        if (r.errors > 0) ctx.exit(ExitCode.failed);
      });
    });
}
