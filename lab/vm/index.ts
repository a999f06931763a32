export { runInVm, startVm, Vm } from './vm.js';
export type { Command, ExecOptions, ExecResult, GuestProcess, RunInVmOptions, RunResult, SpawnOptions, StartVmOptions, VmOptions } from './vm.js';
export { ExecFailedError, ExecTimeoutError, VmDiedError, VmError, VmTimeoutError } from './errors.js';
export type { Backend } from './backends.js';
export { applyTopology, checkTopology, curl, curlMany, parseWhoami, planTopology, LAN, ROUTER, SWITCH_NS, VIP_RANGE, WAN } from './topology.js';
export type { ClientSpec, LbHostSpec, NodeSpec, ServerInfo, Topology, TopologyPlan, TopologySpec, VipMode, Whoami } from './topology.js';
