// Discovery documents (/version, /api, /apis, per group-version resource lists) and a minimal OpenAPI v2
// document. kubectl reads these before anything else: `kubectl get svc` resolves "svc" through shortNames,
// and plain `kubectl apply` fetches /openapi/v2 as protobuf for validation.
import type { JsonObject } from './json.js';
import { apiVersionOf, RESOURCE_TYPES } from './resources.js';

export interface VersionInfo {
  major: string;
  minor: string;
  gitVersion: string;
}

export function versionDoc(v: VersionInfo): JsonObject {
  return {
    major: v.major,
    minor: v.minor,
    gitVersion: v.gitVersion,
    gitCommit: '0000000000000000000000000000000000000000',
    gitTreeState: 'clean',
    buildDate: '2024-08-13T07:28:49Z',
    goVersion: 'go1.22.5',
    compiler: 'gc',
    platform: 'linux/amd64',
  };
}

export function coreVersions(serverAddress: string): JsonObject {
  return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }] };
}

function groups(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const t of RESOURCE_TYPES) {
    if (t.group === '') continue;
    const v = out.get(t.group) ?? [];
    if (!v.includes(t.version)) v.push(t.version);
    out.set(t.group, v);
  }
  return out;
}

export function groupList(): JsonObject {
  return {
    kind: 'APIGroupList',
    apiVersion: 'v1',
    groups: [...groups()].map(([name, versions]) => groupDoc(name, versions)),
  };
}

function groupDoc(name: string, versions: string[]): JsonObject {
  const vs = versions.map((version) => ({ groupVersion: `${name}/${version}`, version }));
  return { name, versions: vs, preferredVersion: vs[0]! };
}

export function group(name: string): JsonObject | undefined {
  const versions = groups().get(name);
  return versions ? { kind: 'APIGroup', apiVersion: 'v1', ...groupDoc(name, versions) } : undefined;
}

export function resourceList(group: string, version: string): JsonObject | undefined {
  const types = RESOURCE_TYPES.filter((t) => t.group === group && t.version === version);
  if (types.length === 0) return undefined;
  const resources: JsonObject[] = [];
  for (const t of types) {
    const r: JsonObject = { name: t.plural, singularName: t.singular, namespaced: t.namespaced, kind: t.kind, verbs: t.verbs };
    if (t.shortNames.length > 0) r.shortNames = t.shortNames;
    if (t.categories) r.categories = t.categories;
    resources.push(r);
    for (const sub of t.subresources) {
      resources.push({ name: `${t.plural}/${sub}`, singularName: '', namespaced: t.namespaced, kind: t.kind, verbs: ['get', 'patch', 'update'] });
    }
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: apiVersionOf(types[0]!), resources };
}

// ---------------------------------------------------------------- OpenAPI v2

/**
 * A valid but empty OpenAPI v2 document: swagger "2.0" and an info block, no definitions. kubectl then finds
 * no schema for any kind, skips client-side validation, and falls back to its compiled-in merge keys for
 * strategic merge patches. Encoded as the gnostic openapi_v2.Document protobuf kubectl asks for.
 */
export function openApiV2(proto: boolean, version: string): { type: string; body: Buffer } {
  if (!proto) {
    return { type: 'application/json', body: Buffer.from(JSON.stringify({ swagger: '2.0', info: { title: 'Kubernetes', version }, paths: {}, definitions: {} })) };
  }
  const info = Buffer.concat([field(1, Buffer.from('Kubernetes')), field(2, Buffer.from(version))]);
  const doc = Buffer.concat([field(1, Buffer.from('2.0')), field(2, info)]);
  return { type: 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf', body: doc };
}

function field(num: number, payload: Buffer): Buffer {
  return Buffer.concat([varint((num << 3) | 2), varint(payload.length), payload]);
}

function varint(n: number): Buffer {
  const bytes: number[] = [];
  while (n > 0x7f) {
    bytes.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  bytes.push(n);
  return Buffer.from(bytes);
}
