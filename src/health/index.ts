// Backend health (issue 8): probes of kube-proxy, healthCheckNodePorts and the DR path, and the verdicts
// that drain and remove failing nodes from the desired state. See docs/health.md.
export { HealthMonitor } from './monitor.js';
export type { CheckView, DrKernel, HealthMonitorOptions, HealthStats, RealServerHealthView } from './monitor.js';
export { DrPathKernel } from './dr-kernel.js';
export { renderIptablesRules, renderNftRules, IPTABLES_CHAIN, NFT_TABLE } from './marks.js';
export type { BackendsChange } from './backends.js';
export type { ProbeKind, ProbeOutcome } from './types.js';
