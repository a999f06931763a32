// The HA lab: two LB hosts running the real ipvs-lb daemon (which runs the real keepalived) in the micro-VM,
// in front of the sample cluster's three nodes, with the Kubernetes API simulator and a client behind the
// router. For tests, benchmarks and the demo that need VRRP failover with real IPVS traffic. docs/lab.md
// ("Two LB hosts") describes it.
//
//   const lab = await HaLab.start({ groups: activeActiveGroups, advertIntervalSeconds: 0.1 }); // boots a VM
//   //   (or { vm } to use one you booted, without a topology yet); both daemons ready, groups settled
//   const vip = await lab.createService('web', 'ga');      // LoadBalancer Service (ports 80, 7) from pool ga
//   const snap = await lab.settled({ a: 'lb1' });          // one MASTER per group, its VIPs on the master only
//   HaLab.masterOf(snap, 'a');                             // 'lb1'
//   await lab.curlFromClient(vip, 3);                      // ['node=node-2 client=203.0.113.10 ...', ...]
//   const lb1 = lab.host('lb1');
//   await lb1.killKeepalived(); await lb1.killDaemon(); await lb1.linkDown(); await lb1.linkUp();
//   await lb1.stopDaemon(); await lb1.startDaemon();      // SIGTERM like systemd's KillMode=mixed; start waits for ready
//   await lb1.reconfigure((c) => ({ ...c, pools: [...] })); // writes the config, POST /api/v1/config/reload
//   await lb1.api('/api/v1/vrrp');  lb1.log();  await lab.connections('lb2');  await lab.kubectlOk('get', 'svc');
//   // Failover measured from the client (lab/ha/prober.ts runs in the client's namespace):
//   const prober = await FailoverProber.start(lab, vip);
//   const t = await failoverTrial(lab, prober, { group: 'a', vip }); // t.failoverMs, t.streamSurvived, t.killed, t.took
//   await lab.stop();                                      // daemons stopped, VM stopped (if the lab booted it)
export { HaLab, HaHost, parseSnapshot, until, type GroupState, type HaLabOptions, type HostSnapshot, type LabSnapshot } from './fixture.js';
export { FailoverProber, failoverTrial, type FailoverTrial, type TrialOptions } from './failover.js';
export {
  activeActiveGroups, checkHaSpec, defaultGroups, haDaemonConfig, haService, haTopology, hostPaths,
  HA_CLIENT, HA_DIR, HA_HOSTS, HA_KUBE_HOST, HA_NODES, HA_PORTS, HA_VIP_POOL_RANGE,
  type HaGroupSpec, type HaHostInfo, type HaLabSpec, type HostPaths,
} from './plan.js';
export type { TrialOutcome, ProberLine } from './prober.js';
