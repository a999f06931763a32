// The resource types the simulator serves, with what discovery advertises for them (verbs, scope, kind,
// short names), which field selectors they accept, and how strategic merge patch merges their lists.
import { getPath, isObject, type JsonObject } from './json.js';
import type { PatchSchema } from './patch.js';

export interface ResourceType {
  group: string;
  version: string;
  plural: string;
  singular: string;
  kind: string;
  namespaced: boolean;
  shortNames: string[];
  categories?: string[];
  verbs: string[];
  subresources: string[];
  /** Field labels accepted by fieldSelector besides metadata.name and metadata.namespace. */
  fields: string[];
  patchSchema: PatchSchema;
  /** Storage shared with another type (events.k8s.io/v1 Events live with core/v1 Events, as in etcd). */
  storage: string;
  /** Conversions to and from the stored form, when the storage belongs to another version. */
  toStorage?: (o: JsonObject) => JsonObject;
  fromStorage?: (o: JsonObject) => JsonObject;
  /** metadata.generation counts spec changes. */
  generation?: boolean;
  /** DELETE answers with the deleted object rather than a Status (ReturnDeletedObject). */
  returnDeleted?: boolean;
  /** Review types are answered, never stored. */
  virtual?: boolean;
}

const CRUD = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];
const META: PatchSchema = { 'metadata.finalizers': { set: true }, 'metadata.ownerReferences': { mergeKey: 'uid' } };
const POD_SPEC = 'spec.template.spec';
const CONTAINER_LISTS: PatchSchema = Object.fromEntries(
  ['containers', 'initContainers', 'ephemeralContainers'].flatMap((c) => [
    [`${POD_SPEC}.${c}`, { mergeKey: 'name' }],
    [`${POD_SPEC}.${c}.ports`, { mergeKey: 'containerPort' }],
    [`${POD_SPEC}.${c}.env`, { mergeKey: 'name' }],
    [`${POD_SPEC}.${c}.volumeMounts`, { mergeKey: 'mountPath' }],
    [`${POD_SPEC}.${c}.volumeDevices`, { mergeKey: 'devicePath' }],
  ]),
);

function type(t: Omit<ResourceType, 'storage' | 'verbs' | 'subresources' | 'fields' | 'patchSchema'> & Partial<ResourceType>): ResourceType {
  return {
    verbs: CRUD,
    subresources: [],
    fields: [],
    ...t,
    patchSchema: { ...META, ...(t.patchSchema ?? {}) },
    storage: t.storage ?? `${t.group}/${t.plural}`,
  };
}

// events.k8s.io/v1 <-> core/v1 field names, as the apiserver converts them.
const EVENT_RENAMES: [string, string][] = [
  ['regarding', 'involvedObject'],
  ['note', 'message'],
  ['reportingController', 'reportingComponent'],
  ['deprecatedSource', 'source'],
  ['deprecatedFirstTimestamp', 'firstTimestamp'],
  ['deprecatedLastTimestamp', 'lastTimestamp'],
  ['deprecatedCount', 'count'],
];

function rename(o: JsonObject, pairs: [string, string][], apiVersion: string): JsonObject {
  const out: JsonObject = { ...o, apiVersion, kind: 'Event' };
  for (const [from, to] of pairs) {
    if (Object.hasOwn(out, from)) {
      out[to] = out[from]!;
      delete out[from];
    }
  }
  return out;
}

export const RESOURCE_TYPES: readonly ResourceType[] = [
  type({ group: '', version: 'v1', plural: 'namespaces', singular: 'namespace', kind: 'Namespace', namespaced: false, shortNames: ['ns'], subresources: ['status'], verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'], fields: ['status.phase'] }),
  type({
    group: '', version: 'v1', plural: 'nodes', singular: 'node', kind: 'Node', namespaced: false, shortNames: ['no'], subresources: ['status'], fields: ['spec.unschedulable'],
    patchSchema: { 'status.conditions': { mergeKey: 'type' }, 'status.addresses': { mergeKey: 'type' }, 'spec.taints': { mergeKey: 'key' }, 'spec.podCIDRs': { set: true } },
  }),
  type({
    group: '', version: 'v1', plural: 'services', singular: 'service', kind: 'Service', namespaced: true, shortNames: ['svc'], categories: ['all'], subresources: ['status'],
    fields: ['spec.type', 'spec.clusterIP'], returnDeleted: true,
    patchSchema: { 'spec.ports': { mergeKey: 'port' }, 'status.conditions': { mergeKey: 'type' } },
  }),
  type({ group: '', version: 'v1', plural: 'configmaps', singular: 'configmap', kind: 'ConfigMap', namespaced: true, shortNames: ['cm'] }),
  type({
    group: '', version: 'v1', plural: 'events', singular: 'event', kind: 'Event', namespaced: true, shortNames: ['ev'],
    fields: ['involvedObject.kind', 'involvedObject.namespace', 'involvedObject.name', 'involvedObject.uid', 'involvedObject.apiVersion', 'involvedObject.resourceVersion', 'involvedObject.fieldPath', 'reason', 'reportingComponent', 'source', 'type'],
  }),
  type({
    group: 'apps', version: 'v1', plural: 'deployments', singular: 'deployment', kind: 'Deployment', namespaced: true, shortNames: ['deploy'], categories: ['all'], subresources: ['status'], generation: true,
    patchSchema: { ...CONTAINER_LISTS, [`${POD_SPEC}.volumes`]: { mergeKey: 'name' }, [`${POD_SPEC}.imagePullSecrets`]: { mergeKey: 'name' }, 'status.conditions': { mergeKey: 'type' } },
  }),
  type({ group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices', singular: 'endpointslice', kind: 'EndpointSlice', namespaced: true, shortNames: [], fields: ['addressType'] }),
  type({ group: 'coordination.k8s.io', version: 'v1', plural: 'leases', singular: 'lease', kind: 'Lease', namespaced: true, shortNames: [] }),
  type({
    group: 'events.k8s.io', version: 'v1', plural: 'events', singular: 'event', kind: 'Event', namespaced: true, shortNames: ['ev'], storage: '/events',
    fields: ['regarding.kind', 'regarding.namespace', 'regarding.name', 'regarding.uid', 'reason', 'reportingController', 'type'],
    toStorage: (o) => rename(o, EVENT_RENAMES, 'v1'),
    fromStorage: (o) => rename(o, EVENT_RENAMES.map(([a, b]) => [b, a]), 'events.k8s.io/v1'),
  }),
  type({ group: 'authorization.k8s.io', version: 'v1', plural: 'selfsubjectaccessreviews', singular: 'selfsubjectaccessreview', kind: 'SelfSubjectAccessReview', namespaced: false, shortNames: [], verbs: ['create'], virtual: true }),
];

export const apiVersionOf = (t: ResourceType): string => (t.group ? `${t.group}/${t.version}` : t.version);

export function findType(group: string, version: string, plural: string): ResourceType | undefined {
  return RESOURCE_TYPES.find((t) => t.group === group && t.version === version && t.plural === plural);
}

/** Field values for field selectors; a missing field reads as "" like the real server's field sets. */
export function fieldValue(t: ResourceType, obj: JsonObject, field: string): string {
  if (field === 'metadata.name' || field === 'metadata.namespace') return String(getPath(obj, field) ?? '');
  if (t.kind === 'Event' && t.group === '' && field === 'source') {
    const src = obj.source;
    return isObject(src) ? String(src.component ?? '') : '';
  }
  const v = getPath(obj, field);
  return v === undefined || v === null ? '' : String(v);
}

export function supportedFields(t: ResourceType): Set<string> {
  return new Set(['metadata.name', 'metadata.namespace', ...t.fields]);
}
