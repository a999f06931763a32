// The operator commands that read the daemon's API: status, pools, allocations, services, show, reconcile.
import { Option, type Command } from 'commander';
import type { AllocationRow, HealthView, Page, PoolUsage, ServiceView, VirtualServiceView, VrrpGroupView } from '../api/state.js';
import { apiClient, CliError, configFor } from './api-client.js';
import type { CliContext } from './context.js';
import { ExitCode } from './exit-codes.js';
import { outputFormats, render, table, type OutputFormat } from './output.js';

const outputOption = () => new Option('-o, --output <format>', 'output format').choices([...outputFormats]).default('table');

async function withApi<T>(ctx: CliContext, fn: (api: ReturnType<typeof apiClient>) => Promise<T>): Promise<T | undefined> {
  try {
    return await fn(apiClient(await configFor(ctx.configPath())));
  } catch (err) {
    if (err instanceof CliError) {
      ctx.err(`ipvs-lb: ${err.message}`);
      ctx.exit(err.exitCode);
      return undefined;
    }
    throw err;
  }
}

const poolsTable = (pools: PoolUsage[]) =>
  table(['POOL', 'SIZE', 'USED', 'FREE', 'ORPHANED', 'AUTO', 'ADDRESSES'], pools.map((p) => [p.name, p.size, p.used, p.free, p.orphaned, p.autoAssign ? 'yes' : 'no', p.addresses.join(',')]));

const allocationsTable = (rows: AllocationRow[]) =>
  table(['ADDRESS', 'POOL', 'SERVICE', 'PORTS', 'SHARING', 'SINCE', 'ORPHANED'], rows.map((a) => [a.address, a.pool, `${a.namespace}/${a.name}`, a.ports.join(','), a.sharingKey, a.allocatedAt, a.orphaned ? 'yes' : '']));

const vsTable = (vss: VirtualServiceView[]) =>
  table(['VIRTUAL SERVICE', 'SERVICE', 'SCHED', 'FWD', 'REAL SERVERS (node addr weight health active)'], vss.map((v) => [
    v.key, v.service, v.scheduler, v.forwarding,
    v.realServers.map((r) => `${r.node} ${r.address}:${r.port} w${r.weight} ${r.health}${r.activeConnections !== undefined ? ` ${r.activeConnections}` : ''}`).join('; ') || '(none)',
  ]));

export function registerOperate(program: Command, ctx: CliContext): void {
  program.command('status').description('one screen: readiness, VRRP state per group, pool usage, services, kernel')
    .addOption(outputOption())
    .action(async (o: { output: OutputFormat }) => {
      await withApi(ctx, async (api) => {
        const [health, vrrp, pools, vss] = await Promise.all([
          // Not ready (503) is a state to show, not a failure to reach the daemon.
          api.getAccepting<HealthView>('/readyz', [503]),
          api.get<{ items: VrrpGroupView[] }>('/api/v1/vrrp'),
          api.get<{ items: PoolUsage[] }>('/api/v1/pools'),
          api.get<{ items: VirtualServiceView[] }>('/api/v1/virtual-services'),
        ]);
        const data = { health, vrrp: vrrp.items, pools: pools.items, virtualServices: vss.items.length };
        ctx.out(render(o.output, data, () => [
          `ready: ${health.ready ? 'yes' : 'NO'}  (ledger ${health.checks.ledger ? 'ok' : 'FAIL'}, kernel ${health.checks.kernel ? 'ok' : 'FAIL'}, reconciled ${health.checks.reconciledOnce ? 'yes' : 'not yet'}, kubernetes ${health.checks.kubernetes ? 'connected' : 'UNREACHABLE'})`,
          ...health.messages.map((m) => `  ! ${m}`),
          '',
          vrrp.items.length ? table(['VRRP GROUP', 'STATE', 'SINCE', 'TRANSITIONS', 'VIPS'], vrrp.items.map((g) => [g.name, g.state, g.since, g.transitions, g.vips.length])) : 'vrrp: no groups',
          '',
          poolsTable(pools.items),
          '',
          `virtual services: ${vss.items.length}`,
        ].join('\n')));
        if (!health.ready) ctx.exit(ExitCode.failed);
      });
    });

  program.command('pools').description('pools with size, used, free and orphaned addresses').addOption(outputOption())
    .action(async (o: { output: OutputFormat }) => {
      await withApi(ctx, async (api) => {
        const r = await api.get<{ items: PoolUsage[] }>('/api/v1/pools');
        ctx.out(render(o.output, r.items, () => poolsTable(r.items)));
      });
    });

  program.command('allocations').description('allocated addresses').addOption(outputOption())
    .option('-n, --namespace <ns>', 'only this namespace').option('--pool <name>', 'only this pool').option('--address <ip>', 'only this address')
    .action(async (o: { output: OutputFormat; namespace?: string; pool?: string; address?: string }) => {
      await withApi(ctx, async (api) => {
        const q = new URLSearchParams({ limit: '1000' });
        if (o.namespace) q.set('namespace', o.namespace);
        if (o.pool) q.set('pool', o.pool);
        if (o.address) q.set('address', o.address);
        const items: AllocationRow[] = [];
        for (let offset = 0; ; offset += 1000) {
          q.set('offset', String(offset));
          const page = await api.get<Page<AllocationRow>>(`/api/v1/allocations?${q}`);
          items.push(...page.items);
          if (items.length >= page.total || page.items.length === 0) break;
        }
        ctx.out(render(o.output, items, () => allocationsTable(items)));
      });
    });

  program.command('services').description('virtual services in the kernel, with real servers').addOption(outputOption())
    .action(async (o: { output: OutputFormat }) => {
      await withApi(ctx, async (api) => {
        const r = await api.get<{ items: VirtualServiceView[] }>('/api/v1/virtual-services');
        ctx.out(render(o.output, r.items, () => vsTable(r.items)));
      });
    });

  program.command('show').description('one Service: its addresses, virtual services and real servers').argument('<namespace/name>').addOption(outputOption())
    .action(async (id: string, o: { output: OutputFormat }) => {
      const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-a-z0-9]*[a-z0-9])?)$/.exec(id);
      if (!m) {
        ctx.err(`ipvs-lb show: expected NAMESPACE/NAME (got ${JSON.stringify(id)})`);
        ctx.exit(ExitCode.usage);
        return;
      }
      await withApi(ctx, async (api) => {
        const v = await api.get<ServiceView>(`/api/v1/services/${m[1]}/${m[3]}`);
        ctx.out(render(o.output, v, () => [
          `service ${v.namespace}/${v.name}`,
          allocationsTable(v.allocations),
          '',
          v.virtualServices.length ? vsTable(v.virtualServices) : 'no virtual service in the kernel',
          ...v.problems.map((p) => `! ${p}`),
        ].join('\n')));
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
