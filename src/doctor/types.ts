// One line of `ipvs-lb doctor`'s report. `fail` makes the command exit 1; `warn` is worth fixing but does not
// stop the load balancer from working; `skip` means a check could not run because one before it failed.
export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip';

export interface CheckResult {
  /** What area: config, kernel, sysctl, binaries, api, rbac, kube-proxy, services. */
  group: string;
  /** What was checked, e.g. the module, sysctl or permission. */
  name: string;
  status: CheckStatus;
  message: string;
}

export const check = (group: string, name: string, status: CheckStatus, message: string): CheckResult => ({ group, name, status, message });
