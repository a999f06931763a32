export { runInVm, startVm, Vm } from './vm.js';
export type { Command, ExecOptions, ExecResult, GuestProcess, RunInVmOptions, RunResult, SpawnOptions, StartVmOptions, VmOptions } from './vm.js';
export { ExecFailedError, ExecTimeoutError, VmDiedError, VmError, VmTimeoutError } from './errors.js';
export type { Backend } from './backends.js';
