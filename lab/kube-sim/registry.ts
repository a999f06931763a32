// The API semantics on top of the store: create / get / list / update / patch / delete for every resource
// type, with kube-apiserver's rules (optimistic concurrency, subresources, server-set metadata, defaults and
// validation, namespace lifecycle). The HTTP layer and the simulator's TypeScript API both go through here, so
// a test that seeds objects directly gets the same behaviour (and the same watch events) as a client.
import { randomUUID } from 'node:crypto';
import { clone, deepEqual, isObject, meta, type Json, type JsonObject } from './json.js';
import { jsonPatch, mergePatch, PatchError, strategicMergePatch } from './patch.js';
import { apiVersionOf, fieldValue, supportedFields, type ResourceType } from './resources.js';
import { matchFields, matchLabels, parseFieldSelector, parseLabelSelector, type FieldRequirement, type LabelRequirement } from './selectors.js';
import type { ServiceNetwork } from './services.js';
import {
  alreadyExists,
  ApiError,
  badRequest,
  conflict,
  fieldInvalid,
  fieldRequired,
  gone,
  invalid,
  notFound,
  unsupportedMediaType,
  type Cause,
} from './status.js';
import type { Store } from './store.js';

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

export const keyOf = (namespace: string, name: string): string => `${namespace}/${name}`;

export interface Selectors {
  labels: LabelRequirement[];
  fields: FieldRequirement[];
}

export interface ListOptions {
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continue?: string;
}

export interface WriteOptions {
  dryRun?: boolean;
}

export class Registry {
  constructor(
    readonly store: Store,
    private readonly services: ServiceNetwork,
  ) {}

  // ------------------------------------------------------------ reading

  get(t: ResourceType, namespace: string, name: string): JsonObject {
    const o = this.store.get(t.storage, keyOf(namespace, name));
    if (!o) throw notFound(t.plural, name, t.group);
    return this.external(t, o);
  }

  /** The stored form (shared storage, no conversion); for the simulator's own bookkeeping. */
  raw(t: ResourceType, namespace: string, name: string): JsonObject | undefined {
    return this.store.get(t.storage, keyOf(namespace, name));
  }

  parseSelectors(t: ResourceType, labelSelector: string | undefined, fieldSelector: string | undefined): Selectors {
    const l = parseLabelSelector(labelSelector);
    if (!l.ok) throw badRequest(`unable to parse requirement: ${l.error.replace(/^unable to parse requirement: /, '')}`);
    const f = parseFieldSelector(fieldSelector, supportedFields(t));
    if (!f.ok) throw badRequest(f.error);
    return { labels: l.value, fields: f.value };
  }

  matches(t: ResourceType, sel: Selectors, namespace: string, external: JsonObject): boolean {
    const m = (external.metadata ?? {}) as JsonObject;
    if (namespace && m.namespace !== namespace) return false;
    return matchLabels(sel.labels, isObject(m.labels) ? m.labels : undefined) && matchFields(sel.fields, (f) => fieldValue(t, external, f));
  }

  list(t: ResourceType, namespace: string, opts: ListOptions = {}): JsonObject {
    const sel = this.parseSelectors(t, opts.labelSelector, opts.fieldSelector);
    let rv = this.store.revision;
    let after = '';
    if (opts.continue) {
      const token = decodeContinue(opts.continue);
      rv = token.rv;
      after = token.start;
    }
    const snapshot = this.store.snapshotAt(t.storage, rv);
    if (!snapshot) {
      throw gone(
        'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.',
      );
    }
    const prefix = namespace ? `${namespace}/` : '';
    const limit = opts.limit && opts.limit > 0 ? opts.limit : Infinity;
    const items: JsonObject[] = [];
    let lastKey = '';
    let more = false;
    let remaining = 0;
    for (const [key, obj] of snapshot) {
      if (prefix && !key.startsWith(prefix)) continue;
      if (after && key <= after) continue;
      // Matching reads the stored object as is when no conversion is needed: a copy is made only for
      // what goes into the page, so paging through 10,000 objects stays linear.
      const view = t.fromStorage ? this.external(t, obj) : obj;
      if (!this.matches(t, sel, namespace, view)) continue;
      if (items.length >= limit) {
        more = true;
        remaining++;
        continue;
      }
      const ext = this.external(t, obj);
      delete ext.kind;
      delete ext.apiVersion;
      items.push(ext);
      lastKey = key;
    }
    const metadata: JsonObject = { resourceVersion: String(rv) };
    if (more) {
      metadata.continue = encodeContinue(rv, lastKey);
      if (sel.labels.length === 0 && sel.fields.length === 0) metadata.remainingItemCount = remaining;
    }
    return { kind: `${t.kind}List`, apiVersion: apiVersionOf(t), metadata, items };
  }

  // ------------------------------------------------------------ writing

  create(t: ResourceType, namespace: string, body: unknown, opts: WriteOptions = {}): JsonObject {
    const obj = this.incoming(t, body);
    const m = meta(obj);
    if (m.resourceVersion !== undefined && m.resourceVersion !== '') throw badRequest('resourceVersion should not be set on objects to be created');
    if ((m.name === undefined || m.name === '') && typeof m.generateName === 'string' && m.generateName !== '') m.name = `${m.generateName}${randomSuffix()}`;
    this.checkNamespace(t, namespace, m);
    const name = m.name;
    if (typeof name !== 'string' || name === '') throw invalid(t.kind, '', [fieldRequired('metadata.name', 'name or generateName is required')], t.group);
    const nameCauses = this.validateName(t, name);
    if (nameCauses.length > 0) throw invalid(t.kind, name, nameCauses, t.group);
    if (t.namespaced && !this.store.get('/namespaces', keyOf('', namespace))) throw notFound('namespaces', namespace);
    const key = keyOf(namespace, name);
    if (this.store.get(t.storage, key)) throw alreadyExists(t.plural, name, t.group);
    m.uid = randomUUID();
    m.creationTimestamp = now();
    delete m.deletionTimestamp;
    delete m.deletionGracePeriodSeconds;
    delete m.selfLink;
    if (t.generation) m.generation = 1;
    else delete m.generation;
    this.prepareCreate(t, obj);
    if (opts.dryRun) return this.external(t, { ...obj, metadata: { ...m, resourceVersion: String(this.store.revision) } });
    const stored = this.store.write(t.storage, key, obj);
    this.committed(t, undefined, stored);
    return this.external(t, stored);
  }

  update(t: ResourceType, namespace: string, name: string, subresource: string, body: unknown, opts: WriteOptions = {}): JsonObject {
    const incoming = this.incoming(t, body);
    const m = meta(incoming);
    if (m.name !== undefined && m.name !== name) throw badRequest(`the name of the object (${String(m.name)}) does not match the name on the URL (${name})`);
    this.checkNamespace(t, namespace, m);
    const key = keyOf(namespace, name);
    const old = this.store.get(t.storage, key);
    if (!old) throw notFound(t.plural, name, t.group);
    const oldMeta = old.metadata as JsonObject;
    if (m.resourceVersion !== undefined && m.resourceVersion !== '' && m.resourceVersion !== oldMeta.resourceVersion) throw conflict(t.plural, name, t.group);
    if (m.uid !== undefined && m.uid !== '' && m.uid !== oldMeta.uid) {
      throw new ApiError(409, 'Conflict', `Precondition failed: UID in precondition: ${String(m.uid)}, UID in object meta: ${String(oldMeta.uid)}`, { name, ...(t.group ? { group: t.group } : {}), kind: t.plural });
    }
    let next: JsonObject;
    if (subresource === 'status') {
      next = clone(old);
      if (incoming.status === undefined) delete next.status;
      else next.status = incoming.status;
    } else {
      next = incoming;
      const nm = meta(next);
      for (const k of ['uid', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'generation'] as const) {
        if (oldMeta[k] === undefined) delete nm[k];
        else nm[k] = oldMeta[k]!;
      }
      if (namespace) nm.namespace = namespace;
      else delete nm.namespace;
      nm.name = name;
      delete nm.selfLink;
      if (t.subresources.includes('status')) {
        if (old.status === undefined) delete next.status;
        else next.status = clone(old.status);
      }
      if (t.generation && !deepEqual(next.spec, old.spec)) nm.generation = Number(oldMeta.generation ?? 0) + 1;
    }
    meta(next).resourceVersion = oldMeta.resourceVersion!;
    this.prepareUpdate(t, next, old, subresource);
    if (deepEqual(next, old)) return this.external(t, old);
    if (opts.dryRun) return this.external(t, next);
    const stored = this.store.write(t.storage, key, next);
    this.committed(t, old, stored);
    return this.external(t, stored);
  }

  patch(t: ResourceType, namespace: string, name: string, subresource: string, contentType: string, body: unknown, opts: WriteOptions = {}): JsonObject {
    const current = this.get(t, namespace, name);
    const rv = (current.metadata as JsonObject).resourceVersion;
    let patched: Json;
    try {
      switch (contentType) {
        case 'application/merge-patch+json':
          if (!isObject(body)) throw new PatchError('malformed', 'merge patch must be a JSON object');
          patched = mergePatch(current, body);
          break;
        case 'application/strategic-merge-patch+json':
          patched = strategicMergePatch(current, body, t.patchSchema);
          break;
        case 'application/json-patch+json':
          patched = jsonPatch(current, body);
          break;
        default:
          throw unsupportedMediaType(contentType);
      }
    } catch (err) {
      if (!(err instanceof PatchError)) throw err;
      if (err.kind === 'malformed') throw badRequest(err.message);
      throw invalid(t.kind, name, [fieldInvalid('patch', body, err.message)], t.group);
    }
    if (!isObject(patched)) throw badRequest('the patch does not produce an object');
    const pm = meta(patched);
    // A resourceVersion in the patch is a precondition, like in an update.
    if (pm.resourceVersion !== rv) throw conflict(t.plural, name, t.group);
    if (pm.name !== name) throw badRequest(`metadata.name: Invalid value: ${JSON.stringify(pm.name)}: field is immutable`);
    return this.update(t, namespace, name, subresource, patched, opts);
  }

  delete(t: ResourceType, namespace: string, name: string, options: unknown = undefined, opts: WriteOptions = {}): JsonObject {
    const key = keyOf(namespace, name);
    const old = this.store.get(t.storage, key);
    if (!old) throw notFound(t.plural, name, t.group);
    const pre = isObject(options) && isObject(options.preconditions) ? options.preconditions : {};
    const oldMeta = old.metadata as JsonObject;
    if (pre.uid !== undefined && pre.uid !== null && pre.uid !== oldMeta.uid) {
      throw new ApiError(409, 'Conflict', `Precondition failed: UID in precondition: ${String(pre.uid)}, UID in object meta: ${String(oldMeta.uid)}`, { name, kind: t.plural });
    }
    if (pre.resourceVersion !== undefined && pre.resourceVersion !== null && pre.resourceVersion !== oldMeta.resourceVersion) {
      throw new ApiError(409, 'Conflict', `Precondition failed: ResourceVersion in precondition: ${String(pre.resourceVersion)}, ResourceVersion in object meta: ${String(oldMeta.resourceVersion)}`, { name, kind: t.plural });
    }
    if (opts.dryRun) return this.deleteResult(t, old);
    if (t.storage === '/namespaces') this.emptyNamespace(name);
    const stored = this.store.write(t.storage, key, undefined);
    this.committed(t, old, undefined);
    return this.deleteResult(t, stored);
  }

  deleteCollection(t: ResourceType, namespace: string, opts: ListOptions, write: WriteOptions = {}): JsonObject {
    const list = this.list(t, namespace, { labelSelector: opts.labelSelector, fieldSelector: opts.fieldSelector });
    const items = (list.items as JsonObject[]).map((o) => {
      const m = o.metadata as JsonObject;
      return this.external(t, this.store.get(t.storage, keyOf(String(m.namespace ?? ''), String(m.name)))!);
    });
    if (!write.dryRun) for (const o of items) this.delete(t, String((o.metadata as JsonObject).namespace ?? ''), String((o.metadata as JsonObject).name));
    return { ...list, items: items.map(({ kind: _k, apiVersion: _a, ...rest }) => rest) };
  }

  /** The object as a client of type `t` sees it: converted from shared storage, with kind and apiVersion. */
  external(t: ResourceType, stored: JsonObject): JsonObject {
    const o = t.fromStorage ? t.fromStorage(clone(stored)) : clone(stored);
    // apiVersion and kind lead, as in the real server's JSON.
    const out: JsonObject = { apiVersion: apiVersionOf(t), kind: t.kind };
    Object.assign(out, o);
    out.apiVersion = apiVersionOf(t);
    out.kind = t.kind;
    return out;
  }

  // ------------------------------------------------------------ helpers

  private incoming(t: ResourceType, body: unknown): JsonObject {
    if (!isObject(body)) throw badRequest('the body of the request must be a JSON object');
    const want = apiVersionOf(t);
    if (body.apiVersion !== undefined && body.apiVersion !== want) {
      throw badRequest(`the API version in the data (${String(body.apiVersion)}) does not match the expected API version (${want})`);
    }
    if (body.kind !== undefined && body.kind !== t.kind) throw badRequest(`the kind in the data (${String(body.kind)}) does not match the expected kind (${t.kind})`);
    const copy = clone(body);
    const stored = t.toStorage ? t.toStorage(copy) : copy;
    stored.apiVersion = t.toStorage ? (stored.apiVersion ?? 'v1') : want;
    stored.kind = t.kind;
    delete (meta(stored) as JsonObject).managedFields;
    return stored;
  }

  private checkNamespace(t: ResourceType, namespace: string, m: JsonObject): void {
    if (!t.namespaced) {
      delete m.namespace;
      return;
    }
    if (m.namespace !== undefined && m.namespace !== '' && m.namespace !== namespace) {
      throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
    m.namespace = namespace;
  }

  private validateName(t: ResourceType, name: string): Cause[] {
    if (t.storage === '/services') {
      if (!DNS1035_LABEL.test(name) || name.length > 63) return [fieldInvalid('metadata.name', name, "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")];
    } else if (t.storage === '/namespaces') {
      if (!DNS1123_LABEL.test(name) || name.length > 63) return [fieldInvalid('metadata.name', name, "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")];
    } else if (!DNS1123_SUBDOMAIN.test(name) || name.length > 253) {
      return [fieldInvalid('metadata.name', name, "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")];
    }
    return [];
  }

  private prepareCreate(t: ResourceType, obj: JsonObject): void {
    const name = String(meta(obj).name);
    switch (t.storage) {
      case '/services': {
        obj.status = { loadBalancer: {} };
        const causes = this.services.prepare(obj, undefined);
        if (causes.length > 0) throw invalid('Service', name, causes);
        break;
      }
      case '/namespaces':
        obj.spec = { finalizers: ['kubernetes'] };
        obj.status = { phase: 'Active' };
        break;
      case 'apps/deployments': {
        obj.status = {};
        const causes = validateDeployment(obj);
        if (causes.length > 0) throw invalid('Deployment', name, causes, 'apps');
        break;
      }
      case 'discovery.k8s.io/endpointslices': {
        const causes = validateEndpointSlice(obj);
        if (causes.length > 0) throw invalid('EndpointSlice', name, causes, 'discovery.k8s.io');
        break;
      }
      case 'coordination.k8s.io/leases': {
        const causes = validateLease(obj);
        if (causes.length > 0) throw invalid('Lease', name, causes, 'coordination.k8s.io');
        break;
      }
    }
  }

  private prepareUpdate(t: ResourceType, next: JsonObject, old: JsonObject, subresource: string): void {
    const name = String(meta(next).name);
    switch (t.storage) {
      case '/services': {
        const causes = subresource === 'status' ? this.services.prepareStatus(next) : this.services.prepare(next, old);
        if (causes.length > 0) throw invalid('Service', name, causes);
        break;
      }
      case 'apps/deployments': {
        const causes = subresource === 'status' ? [] : validateDeployment(next);
        if (causes.length > 0) throw invalid('Deployment', name, causes, 'apps');
        break;
      }
      case 'discovery.k8s.io/endpointslices': {
        const causes = validateEndpointSlice(next);
        if (next.addressType !== old.addressType) causes.push(fieldInvalid('addressType', next.addressType ?? null, 'field is immutable'));
        if (causes.length > 0) throw invalid('EndpointSlice', name, causes, 'discovery.k8s.io');
        break;
      }
      case 'coordination.k8s.io/leases': {
        const causes = validateLease(next);
        if (causes.length > 0) throw invalid('Lease', name, causes, 'coordination.k8s.io');
        break;
      }
    }
  }

  private committed(t: ResourceType, old: JsonObject | undefined, next: JsonObject | undefined): void {
    if (t.storage === '/services') this.services.commit(old, next);
  }

  private deleteResult(t: ResourceType, obj: JsonObject): JsonObject {
    if (t.returnDeleted || t.storage === '/namespaces') return this.external(t, obj);
    const m = obj.metadata as JsonObject;
    return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name: m.name ?? '', ...(t.group ? { group: t.group } : {}), kind: t.plural, uid: m.uid ?? '' } };
  }

  /** What the namespace controller does, done at once: every object in the namespace goes first. */
  private emptyNamespace(ns: string): void {
    for (const storage of ['/services', '/configmaps', '/events', 'apps/deployments', 'discovery.k8s.io/endpointslices', 'coordination.k8s.io/leases']) {
      for (const [key, obj] of this.store.list(storage)) {
        if (!key.startsWith(`${ns}/`)) continue;
        this.store.write(storage, key, undefined);
        if (storage === '/services') this.services.commit(obj, undefined);
      }
    }
  }
}

function validateDeployment(o: JsonObject): Cause[] {
  const causes: Cause[] = [];
  const spec = isObject(o.spec) ? o.spec : undefined;
  if (!spec) return [fieldRequired('spec')];
  spec.replicas ??= 1;
  if (!Number.isInteger(spec.replicas) || (spec.replicas as number) < 0) causes.push(fieldInvalid('spec.replicas', spec.replicas, 'must be greater than or equal to 0'));
  const selector = isObject(spec.selector) ? spec.selector : undefined;
  if (!selector) causes.push(fieldRequired('spec.selector'));
  const tmplLabels = isObject(spec.template) && isObject(spec.template.metadata) && isObject(spec.template.metadata.labels) ? spec.template.metadata.labels : {};
  const matchLabels = selector && isObject(selector.matchLabels) ? selector.matchLabels : {};
  for (const [k, v] of Object.entries(matchLabels)) {
    if (tmplLabels[k] !== v) {
      causes.push(fieldInvalid('spec.template.metadata.labels', tmplLabels, '`selector` does not match template `labels`'));
      break;
    }
  }
  const containers = isObject(spec.template) && isObject(spec.template.spec) ? spec.template.spec.containers : undefined;
  if (!Array.isArray(containers) || containers.length === 0) causes.push(fieldRequired('spec.template.spec.containers'));
  else {
    for (const [i, c] of containers.entries()) {
      if (!isObject(c) || typeof c.name !== 'string' || c.name === '') causes.push(fieldRequired(`spec.template.spec.containers[${i}].name`));
      if (!isObject(c) || typeof c.image !== 'string' || c.image === '') causes.push(fieldRequired(`spec.template.spec.containers[${i}].image`));
    }
  }
  spec.strategy ??= { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '25%', maxSurge: '25%' } };
  spec.revisionHistoryLimit ??= 10;
  spec.progressDeadlineSeconds ??= 600;
  return causes;
}

function validateEndpointSlice(o: JsonObject): Cause[] {
  const causes: Cause[] = [];
  if (!['IPv4', 'IPv6', 'FQDN'].includes(o.addressType as string)) causes.push(fieldInvalid('addressType', o.addressType ?? null, 'supported values: "FQDN", "IPv4", "IPv6"'));
  const eps = o.endpoints;
  if (eps !== undefined && eps !== null && !Array.isArray(eps)) causes.push(fieldInvalid('endpoints', eps, 'must be a list'));
  for (const [i, e] of (Array.isArray(eps) ? eps : []).entries()) {
    if (!isObject(e) || !Array.isArray(e.addresses) || e.addresses.length === 0) causes.push(fieldRequired(`endpoints[${i}].addresses`, 'must contain at least 1 address'));
  }
  if (o.endpoints === undefined || o.endpoints === null) o.endpoints = [];
  return causes;
}

function validateLease(o: JsonObject): Cause[] {
  const spec = isObject(o.spec) ? o.spec : (o.spec = {});
  const causes: Cause[] = [];
  if (spec.leaseDurationSeconds !== undefined && (!Number.isInteger(spec.leaseDurationSeconds) || (spec.leaseDurationSeconds as number) <= 0)) {
    causes.push(fieldInvalid('spec.leaseDurationSeconds', spec.leaseDurationSeconds, 'must be greater than 0'));
  }
  for (const f of ['acquireTime', 'renewTime'] as const) {
    const v = spec[f];
    if (v !== undefined && v !== null && (typeof v !== 'string' || Number.isNaN(Date.parse(v)))) causes.push(fieldInvalid(`spec.${f}`, v, 'must be an RFC 3339 time with microseconds'));
  }
  return causes;
}

function now(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function randomSuffix(): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  let s = '';
  for (let i = 0; i < 5; i++) s += alphabet[Math.floor(Math.random() * alphabet.length)];
  return s;
}

function encodeContinue(rv: number, start: string): string {
  return Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv, start })).toString('base64url');
}

function decodeContinue(token: string): { rv: number; start: string } {
  try {
    const t = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { rv?: unknown; start?: unknown };
    if (typeof t.rv === 'number' && typeof t.start === 'string') return { rv: t.rv, start: t.start };
  } catch {
    // fall through
  }
  throw badRequest('continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)');
}
