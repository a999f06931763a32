// The checks of `ipvs-lb doctor` (src/cli/doctor.ts runs them): the host's kernel modules, sysctls and helper
// programs here; the cluster's RBAC, kube-proxy and Services in kubernetes.ts.
import type { Config } from '../config/types.js';
import { defaultHostPaths, moduleStates, probeCommand, readSysctl, type HostPaths } from './host.js';
import { arpingCheck, interfaceKey, keepalivedCheck, moduleCheck, requiredModules, requiredSysctls, sysctlCheck } from './kernel.js';
import type { CheckResult } from './types.js';

export { kubernetesChecks } from './kubernetes.js';
export { check, type CheckResult, type CheckStatus } from './types.js';

export async function hostChecks(config: Config, paths: HostPaths = defaultHostPaths()): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  const needs = requiredModules(config);
  const states = await moduleStates(needs.map((m) => m.name), paths);
  for (const m of needs) out.push(moduleCheck(m, states.get(m.name), paths.release));
  for (const rule of requiredSysctls(config)) {
    const all = await readSysctl(rule.key, paths.proc);
    const own = rule.perInterface ? await readSysctl(interfaceKey(rule, config.interface), paths.proc) : undefined;
    out.push(sysctlCheck(rule, all, own, config.interface));
  }
  out.push(keepalivedCheck(config, config.vrrp.enabled ? await probeCommand(config.vrrp.keepalivedPath, ['--version']) : undefined));
  out.push(arpingCheck(config, config.vrrp.garpRepeat > 0 ? await probeCommand('arping', ['-V']) : undefined));
  return out;
}
