// `ipvs-lb doctor`: every check in one report, in the order an operator fixes things: the config, the host
// (kernel modules, sysctls, keepalived and arping), the local daemon's API, then the cluster (credentials
// and RBAC, kube-proxy, Services). Exit 1 when any check fails; warnings alone exit 0.
import type { Command } from 'commander';
import type { HealthView } from '../api/state.js';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/types.js';
import { check, type CheckResult } from '../doctor/types.js';
import { ApiUnreachableError, apiClient, CliError } from './api-client.js';
import type { CliContext } from './context.js';
import { ExitCode } from './exit-codes.js';
import { outputOption, render, table, type OutputFormat } from './output.js';

async function apiCheck(config: Config): Promise<CheckResult> {
  const api = apiClient(config);
  try {
    const h = await api.getAccepting<HealthView>('/readyz', [503]);
    if (h.ready) return check('api', api.base, 'ok', `the daemon answers and is ready${h.messages.length ? ` (${h.messages.join('; ')})` : ''}`);
    return check('api', api.base, 'warn', `the daemon answers but is not ready: ${h.messages.join('; ') || JSON.stringify(h.checks)}`);
  } catch (err) {
    if (err instanceof ApiUnreachableError) return check('api', api.base, 'fail', `no answer (${err.reason}): the daemon is not running, or api.listen differs`);
    if (err instanceof CliError) return check('api', api.base, 'fail', err.message);
    throw err;
  }
}

const mark = { ok: 'ok', warn: 'WARN', fail: 'FAIL', skip: 'skip' } as const;

export function registerDoctor(program: Command, ctx: CliContext): void {
  program
    .command('doctor')
    .description('check this LB host and its cluster: kernel modules, sysctls, keepalived and arping, the API, RBAC, kube-proxy, Services')
    .option('--no-kubernetes', 'skip the checks that talk to the Kubernetes API')
    .option('--timeout <seconds>', 'how long to wait for each Kubernetes API request', '10')
    .addOption(outputOption())
    .action(async (o: { output: OutputFormat; kubernetes: boolean; timeout: string }) => {
      const timeout = Number(o.timeout);
      if (!Number.isFinite(timeout) || timeout <= 0 || timeout > 600) {
        ctx.err(`ipvs-lb doctor: --timeout must be a number of seconds between 0 and 600 (got ${JSON.stringify(o.timeout)})`);
        ctx.exit(ExitCode.usage);
        return;
      }
      const path = ctx.configPath();
      const loaded = await loadConfig(path);
      const results: CheckResult[] = [];
      if (!loaded.ok) {
        results.push(...loaded.problems.map((p) => check('config', path, 'fail', p)));
        results.push(check('config', 'everything else', 'skip', 'needs a valid config'));
      } else {
        const config = loaded.config;
        // Loaded here: the Kubernetes client is the heaviest import, and the other commands do not need it.
        const { hostChecks, kubernetesChecks } = await import('../doctor/index.js');
        results.push(check('config', path, 'ok', 'valid'));
        results.push(...(await hostChecks(config)));
        results.push(await apiCheck(config));
        if (o.kubernetes) results.push(...(await kubernetesChecks(config, { timeoutMs: timeout * 1000 })));
      }
      const failed = results.filter((r) => r.status === 'fail').length;
      const warned = results.filter((r) => r.status === 'warn').length;
      const summary = { ok: failed === 0, failed, warnings: warned };
      ctx.out(render(o.output, { ...summary, checks: results }, () => [
        table(['CHECK', 'NAME', 'STATUS', 'DETAIL'], results.map((r) => [r.group, r.name, mark[r.status], r.message])),
        '',
        failed === 0 ? `no problems${warned ? `, ${warned} warning${warned === 1 ? '' : 's'}` : ''}` : `${failed} problem${failed === 1 ? '' : 's'}, ${warned} warning${warned === 1 ? '' : 's'}`,
      ].join('\n')));
      if (failed > 0) ctx.exit(ExitCode.failed);
    });
}
