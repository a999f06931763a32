// The micro-VM lab: a real Linux kernel with IPVS for tests, benchmarks and the demo, on a host whose own
// kernel has none. See docs/lab.md for how it works, timings and debugging.
//
// Backends: User-Mode Linux (default; /usr/bin/linux.uml) or QEMU software emulation of the real Debian amd64
// kernel (`backend: 'qemu'` or env IPVS_LB_LAB_BACKEND=qemu). Either way the guest sees the host's root
// read-only under a tmpfs overlay, so it runs the host's node, ipvsadm, keepalived, curl, socat and this
// checkout (node /work/main/dist/...) at the same paths. A private run directory (/tmp/ipvs-lb-lab-ID) is
// shared writable at the same path on both sides; it holds the control files and the artifacts.
//
// One-shot:
//   const r = await runInVm({ script: 'modprobe ip_vs && ipvsadm -Ln', timeoutMs: 60_000, knobs: { K: 'v' } });
//   r.exitCode, r.output (console: the script's stdout+stderr), r.artifactsDir ($LAB_ARTIFACTS), r.durationMs
//   Throws VmTimeoutError (VM killed) or VmDiedError (no exit status, e.g. a panic).
//
// Stepwise (the VM keeps running while the test drives it; always stop it, e.g. in after()):
//   const vm = await startVm({ backend: 'uml' });
//   await applyTopology(vm, { lbs: [...], hosts: [...], nodes: [...], clients: [...] });  // namespaces on a
//     bridge, a router for 203.0.113.0/24 clients, nodes taking VIPs via kube-ipvs0|dnat|dnat-nft|tunl0|lo|none,
//     HTTP "whoami" + echo servers; optional IPv6 per namespace (ip6). curlMany()/parseWhoami() read answers.
//   const r = await vm.exec(['ipvsadm', '-Ln'], { ns: 'lb1' });               // {code, stdout, stderr, durationMs}
//   await vm.run('set -e; ...', { ns: 'lb1', input: '...' });                 // throws ExecFailedError if code != 0
//   const p = await vm.spawn('keepalived-lb1', ['keepalived', '-n', ...], { ns: 'lb1' });  // background, own session
//   p.log(); await p.signal('HUP'); await p.stop(); await p.wait();           // log in artifacts/logs/NAME.log
//   await vm.readFile('/etc/x'); await vm.writeFile('/etc/x', 'text');        // guest files (overlay)
//   await vm.stop();                                                          // returns the artifacts dir
// exec() kills the command's whole session after timeoutMs (default 60 s) and throws ExecTimeoutError; the
// VM stays usable. Arguments of an argv are never parsed by a shell; a string is a bash script.
//
// Host hygiene: every run owns /tmp/ipvs-lb-lab-ID, /dev/shm/ipvs-lb-lab-ID (UML's RAM file) and the VM's
// process group. All of it goes when the run ends, when this process exits or gets SIGINT/SIGTERM/SIGHUP;
// if this process is SIGKILLed the guest powers itself off (its console closes) and the next run sweeps the
// directories. Artifacts stay until dispose() or process exit, or are copied to `artifactsDir` if given.
export { runInVm, startVm, Vm } from './vm.js';
export type { Command, ExecOptions, ExecResult, GuestProcess, RunInVmOptions, RunResult, SpawnOptions, StartVmOptions, VmOptions } from './vm.js';
export { ExecFailedError, ExecTimeoutError, VmDiedError, VmError, VmTimeoutError } from './errors.js';
export type { Backend } from './backends.js';
export { labTimeScale, resolveBackend, umlProblem } from './backends.js';
export { sweepStale } from './cleanup.js';
export { backgroundLaunch } from './guest-scripts.js';
export { shArgv, shq } from './shell.js';
export { applyTopology, checkTopology, curl, curlMany, healthzFile, parseWhoami, planTopology, restartServer, serverArgv, setHealthz, LAN, ROUTER, SWITCH_NS, VIP_RANGE, WAN } from './topology.js';
export type { ClientSpec, LbHostSpec, NodeSpec, ServerInfo, Topology, TopologyPlan, TopologySpec, VipMode, Whoami } from './topology.js';
