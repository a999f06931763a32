// The simulator's public surface for tests, benchmarks and the lab command.
export { KubeSim, type KubeSimOptions, type RestartOptions } from './server.js';
export { Cluster, sampleCluster, type EndpointPlacement, type NodeSpec } from './cluster.js';
export type { AccessRule } from './auth.js';
export type { FailureSpec } from './faults.js';
export type { Json, JsonObject } from './json.js';
