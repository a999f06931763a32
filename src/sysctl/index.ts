// The LB host's kernel settings: pure checks (checks.ts) and the /proc/sys adapter (host.ts). See
// docs/kernel.md ("Host settings").
export { checkSysctls, describeFinding, sysctlKey, sysctlKeys, sysctlNeeds, sysctlPath, type SysctlFinding, type SysctlNeeds, type SysctlSeverity } from './checks.js';
export { checkHostSysctls, PROC_SYS, readSysctls, reconcileHostSysctls, type SysctlChange, type SysctlResult } from './host.js';
