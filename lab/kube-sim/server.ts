// KubeSim: an HTTPS server on loopback that behaves like kube-apiserver for what ipvs-lb and kubectl use.
// The parts: store (revisions, history), registry (API semantics), watch (streams), discovery, faults and
// auth; this module routes HTTP requests to them and owns the listener's life (down, up, restart).
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { ADMIN_PREFIX, handleAdmin } from './admin.js';
import { ALLOW_ALL, allowed, type AccessRule, type Attributes } from './auth.js';
import { ensureCerts, type Certs } from './certs.js';
import { coreVersions, group, groupList, openApiV2, resourceList, versionDoc, type VersionInfo } from './discovery.js';
import { Faults, type FailureSpec } from './faults.js';
import { isObject, type JsonObject } from './json.js';
import { Registry, type ListOptions } from './registry.js';
import { apiVersionOf, findType, RESOURCE_TYPES, type ResourceType } from './resources.js';
import { ServiceNetwork } from './services.js';
import { ApiError, badRequest, fieldInvalid, forbidden, internalError, invalid, methodNotAllowed, pathNotFound, unauthorized } from './status.js';
import { Store } from './store.js';
import { toTable, wantsTable, type IncludeObject } from './table.js';
import { WatchStream } from './watch.js';

export interface KubeSimOptions {
  /** Run directory for certificates and the kubeconfig; a temporary one (removed by stop()) by default. */
  dir?: string;
  /** Listening port; 0 (default) picks a free one, which restarts keep. */
  port?: number;
  host?: '127.0.0.1' | '::1';
  /** Bearer token clients must send; random by default. */
  token?: string;
  /** The user the token belongs to, for 403 messages and access reviews. */
  user?: string;
  /** RBAC rules for that user; everything is allowed by default. */
  rules?: AccessRule[];
  /** Service cluster IP ranges, primary first (documentation ranges only in fixtures). */
  serviceCIDRs?: string[];
  nodePortRange?: [number, number];
  /** How many changes the history keeps; watches and continue tokens from before it get 410 Gone. */
  historyWindow?: number;
  /** Interval of BOOKMARK events on watches that allow them (the real server: about a minute). */
  bookmarkIntervalMs?: number;
  /** Watch duration when the client gives no timeoutSeconds. */
  watchTimeoutSeconds?: number;
  version?: VersionInfo;
  seed?: number;
}

export interface RestartOptions {
  /** Forget every object (the built-in namespaces and `default/kubernetes` come back). */
  wipe?: boolean;
  /** Drop the change history, as a fresh watch cache does (default true): old resourceVersions get 410. */
  compact?: boolean;
  /** Stay down this long before coming back. */
  downMs?: number;
}

interface Route {
  type: ResourceType;
  namespace: string;
  name: string;
  subresource: string;
  watchPath: boolean;
}

const MAX_BODY = 3 * 1024 * 1024;

// A process that exits without stop() (a failed test, process.exit) still leaves no temp dir behind.
const ownedDirs = new Set<string>();
process.on('exit', () => {
  for (const d of ownedDirs) rmSync(d, { recursive: true, force: true });
});
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class KubeSim {
  readonly store: Store;
  readonly registry: Registry;
  readonly faults = new Faults();
  private readonly network: ServiceNetwork;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly watches = new Set<WatchStream>();
  private readonly counts = new Map<string, number>();
  private readonly denied: string[] = [];
  private rules: AccessRule[];
  private portNumber: number;

  private constructor(
    readonly dir: string,
    private readonly ownsDir: boolean,
    private readonly certs: Certs,
    readonly token: string,
    private readonly opts: Required<Omit<KubeSimOptions, 'dir' | 'token' | 'rules' | 'port'>>,
    rules: AccessRule[],
    port: number,
  ) {
    this.store = new Store(opts.historyWindow);
    this.network = new ServiceNetwork({ serviceCIDRs: opts.serviceCIDRs, nodePortRange: opts.nodePortRange, seed: opts.seed });
    this.registry = new Registry(this.store, this.network);
    this.rules = rules;
    this.portNumber = port;
    this.seedDefaults();
  }

  static async start(options: KubeSimOptions = {}): Promise<KubeSim> {
    const ownsDir = options.dir === undefined;
    const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'kube-sim-')));
    try {
      const certs = await ensureCerts(dir);
      const sim = new KubeSim(
        dir,
        ownsDir,
        certs,
        options.token ?? randomBytes(24).toString('base64url'),
        {
          host: options.host ?? '127.0.0.1',
          user: options.user ?? 'system:serviceaccount:ipvs-lb:ipvs-lb',
          serviceCIDRs: options.serviceCIDRs ?? ['203.0.113.128/25'],
          nodePortRange: options.nodePortRange ?? [30000, 32767],
          historyWindow: options.historyWindow ?? 10_000,
          bookmarkIntervalMs: options.bookmarkIntervalMs ?? 5_000,
          watchTimeoutSeconds: options.watchTimeoutSeconds ?? 1800,
          version: options.version ?? { major: '1', minor: '31', gitVersion: 'v1.31.0' },
          seed: options.seed ?? 1,
        },
        options.rules ?? ALLOW_ALL,
        options.port ?? 0,
      );
      await sim.comeUp();
      if (ownsDir) ownedDirs.add(dir);
      return sim;
    } catch (err) {
      if (ownsDir) await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  get port(): number {
    return this.portNumber;
  }

  get url(): string {
    return this.opts.host.includes(':') ? `https://[${this.opts.host}]:${this.portNumber}` : `https://${this.opts.host}:${this.portNumber}`;
  }

  get caFile(): string {
    return this.certs.caFile;
  }

  get caPem(): string {
    return this.certs.ca;
  }

  get up(): boolean {
    return this.server !== undefined;
  }

  /** Stops serving and removes the run directory if the simulator made it. */
  async stop(): Promise<void> {
    await this.goDown({ clean: true });
    if (this.ownsDir) {
      ownedDirs.delete(this.dir);
      await rm(this.dir, { recursive: true, force: true });
    }
  }


  // ------------------------------------------------------------ client set-up

  kubeConfigYaml(): string {
    const ca = Buffer.from(this.certs.ca).toString('base64');
    return [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: kube-sim',
      '  cluster:',
      `    server: ${this.url}`,
      `    certificate-authority-data: ${ca}`,
      'users:',
      '- name: kube-sim',
      '  user:',
      `    token: ${this.token}`,
      'contexts:',
      '- name: kube-sim',
      '  context:',
      '    cluster: kube-sim',
      '    user: kube-sim',
      '    namespace: default',
      'current-context: kube-sim',
      '',
    ].join('\n');
  }

  /** Writes a kubeconfig (mode 0600) that kubectl and client-node accept; returns its path. */
  async writeKubeconfig(path = join(this.dir, 'kubeconfig')): Promise<string> {
    await writeFile(path, this.kubeConfigYaml(), { mode: 0o600 });
    return path;
  }

  /** A client-node KubeConfig for this simulator. */
  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromString(this.kubeConfigYaml());
    return kc;
  }

  // ------------------------------------------------------------ direct object access (no HTTP, same rules)

  typeOf(apiVersion: string, kind: string): ResourceType {
    const t = RESOURCE_TYPES.find((x) => apiVersionOf(x) === apiVersion && x.kind === kind && !x.virtual);
    if (!t) throw new Error(`kube-sim serves no ${kind} in ${apiVersion}`);
    return t;
  }

  private nsOf(t: ResourceType, obj: JsonObject | undefined, namespace?: string): string {
    if (!t.namespaced) return '';
    const m = obj && isObject(obj.metadata) ? obj.metadata : {};
    return namespace ?? (typeof m.namespace === 'string' && m.namespace ? m.namespace : 'default');
  }

  create(obj: JsonObject): JsonObject {
    const t = this.typeOf(String(obj.apiVersion), String(obj.kind));
    return this.registry.create(t, this.nsOf(t, obj), obj);
  }

  get(apiVersion: string, kind: string, name: string, namespace?: string): JsonObject | undefined {
    const t = this.typeOf(apiVersion, kind);
    try {
      return this.registry.get(t, this.nsOf(t, undefined, namespace), name);
    } catch (err) {
      if (err instanceof ApiError && err.code === 404) return undefined;
      throw err;
    }
  }

  list(apiVersion: string, kind: string, namespace = '', opts: ListOptions = {}): JsonObject[] {
    const t = this.typeOf(apiVersion, kind);
    return this.registry.list(t, t.namespaced ? namespace : '', opts).items as JsonObject[];
  }

  update(obj: JsonObject, subresource = ''): JsonObject {
    const t = this.typeOf(String(obj.apiVersion), String(obj.kind));
    return this.registry.update(t, this.nsOf(t, obj), String((obj.metadata as JsonObject).name), subresource, obj);
  }

  patch(apiVersion: string, kind: string, name: string, namespace: string | undefined, patch: unknown, contentType = 'application/merge-patch+json', subresource = ''): JsonObject {
    const t = this.typeOf(apiVersion, kind);
    return this.registry.patch(t, this.nsOf(t, undefined, namespace), name, subresource, contentType, patch);
  }

  delete(apiVersion: string, kind: string, name: string, namespace?: string): void {
    const t = this.typeOf(apiVersion, kind);
    this.registry.delete(t, this.nsOf(t, undefined, namespace), name);
  }

  // ------------------------------------------------------------ faults and observation

  /** Ends every open watch: cleanly (a server-side timeout) or by resetting the connection. */
  dropWatches(opts: { abrupt?: boolean } = {}): number {
    const n = this.watches.size;
    for (const w of [...this.watches]) w.close(!opts.abrupt);
    return n;
  }

  get activeWatches(): number {
    return this.watches.size;
  }

  setDelay(ms: number): void {
    this.faults.delayMs = ms;
  }

  failNext(count: number, spec: FailureSpec): void {
    this.faults.failNext(count, spec);
  }

  failFor(ms: number, spec: FailureSpec): void {
    this.faults.failFor(ms, spec);
  }

  clearFaults(): void {
    this.faults.clear();
  }

  setRules(rules: AccessRule[]): void {
    this.rules = rules;
  }

  /** Drops the change history now: every older resourceVersion gets 410 Gone. */
  compact(): void {
    this.store.compact();
  }

  setHistoryWindow(n: number): void {
    this.store.setWindow(n);
  }

  /** Requests served, keyed "VERB RESOURCE" ("list services", "patch services/status", "get /api"). */
  requestCounts(): Record<string, number> {
    return Object.fromEntries([...this.counts].sort());
  }

  totalRequests(): number {
    let n = 0;
    for (const v of this.counts.values()) n += v;
    return n;
  }

  resetCounts(): void {
    this.counts.clear();
    this.denied.length = 0;
  }

  /** Requests refused with 403 by the rules, oldest first ("patch services/status in default name web"). */
  deniedRequests(): string[] {
    return [...this.denied];
  }

  /** Becomes unreachable: the listener closes (connection refused) and every open connection is cut. */
  async goDown(opts: { clean?: boolean } = {}): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const w of [...this.watches]) w.close(opts.clean ?? false);
    const closed = new Promise<void>((r) => server.close(() => r()));
    // Let cleanly ended streams flush their last chunk before the sockets go.
    if (opts.clean) await sleep(20);
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await closed;
  }

  /** Listens again on the same port. */
  async comeUp(): Promise<void> {
    if (this.server) return;
    const server = createServer({ key: this.certs.key, cert: this.certs.cert }, (req, res) => {
      this.handle(req, res).catch((err: unknown) => this.fail(res, err instanceof ApiError ? err : internalError((err as Error).message)));
    });
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    server.on('tlsClientError', () => {});
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.portNumber, this.opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address();
    if (addr && typeof addr === 'object') this.portNumber = addr.port;
    this.server = server;
  }

  /** Goes down and comes back on the same port, keeping or wiping the data; history is compacted by default. */
  async restart(opts: RestartOptions = {}): Promise<void> {
    await this.goDown({ clean: true });
    if (opts.wipe) {
      this.store.wipe();
      this.network.reset([]);
      this.seedDefaults();
      // Compacting after the seeding puts every old resourceVersion out of reach, so clients relist and
      // learn about the deletions, as they would against a new etcd.
      this.store.compact();
    } else if (opts.compact ?? true) this.store.compact();
    if (opts.downMs) await sleep(opts.downMs);
    await this.comeUp();
  }

  // ------------------------------------------------------------ HTTP

  private seedDefaults(): void {
    const ns = RESOURCE_TYPES.find((t) => t.plural === 'namespaces')!;
    for (const name of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) {
      if (!this.registry.raw(ns, '', name)) this.registry.create(ns, '', { metadata: { name, labels: { 'kubernetes.io/metadata.name': name } } });
    }
    const svc = RESOURCE_TYPES.find((t) => t.plural === 'services')!;
    if (!this.registry.raw(svc, 'default', 'kubernetes')) {
      this.registry.create(svc, 'default', {
        metadata: { name: 'kubernetes', labels: { component: 'apiserver', provider: 'kubernetes' } },
        spec: { type: 'ClusterIP', clusterIP: this.network.firstIP(), ports: [{ name: 'https', port: 443, protocol: 'TCP', targetPort: 6443 }] },
      });
    }
  }

  private count(key: string): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  private send(res: ServerResponse, code: number, body: JsonObject, headers: Record<string, string> = {}): void {
    if (res.headersSent || res.destroyed) return;
    const text = JSON.stringify(body);
    res.writeHead(code, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Content-Length': Buffer.byteLength(text), ...headers });
    res.end(text);
  }

  private fail(res: ServerResponse, err: ApiError): void {
    this.send(res, err.code, err.toStatus(), err.headers);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://kube-sim');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const route = this.route(path);
    const verb = route ? verbOf(req.method ?? 'GET', route, url.searchParams) : (req.method ?? 'GET').toLowerCase();
    const resource = route ? (route.subresource ? `${route.type.plural}/${route.subresource}` : route.type.plural) : path;
    // Admin calls are the test's, not the client's: they stay out of the request counts.
    if (!path.startsWith(ADMIN_PREFIX)) this.count(`${verb} ${resource}`);
    const body = await readBody(req);
    // Not for admin calls: `PUT delay {"ms": 0}` must undo a long delay at once.
    if (this.faults.delayMs > 0 && !path.startsWith(ADMIN_PREFIX)) await sleep(this.faults.delayMs);
    const anonymous = ['/version', '/healthz', '/livez', '/readyz'].includes(path);
    if (!anonymous && req.headers.authorization !== `Bearer ${this.token}`) throw unauthorized();
    if (path.startsWith(ADMIN_PREFIX)) {
      const reply = handleAdmin(this, req.method ?? 'GET', path, body.length > 0 ? parseJson(body) : undefined);
      this.send(res, reply.code, reply.body);
      if (reply.after) res.on('finish', () => void reply.after!().catch(() => {}));
      return;
    }
    const injected = this.faults.next(verb, resource);
    if (injected) throw injected;
    if (!route) {
      this.serveNonResource(req, res, path);
      return;
    }
    const t = route.type;
    const attrs: Attributes = { verb, group: t.group, resource: t.plural, subresource: route.subresource, namespace: route.namespace, name: route.name };
    if (!t.virtual && !allowed(this.rules, attrs)) {
      this.denied.push(`${verb} ${resource}${route.namespace ? ` in ${route.namespace}` : ''}${route.name ? ` name ${route.name}` : ''}`);
      throw forbidden(this.opts.user, verb, resource, t.group, route.namespace, route.name);
    }
    const q = url.searchParams;
    const write = { dryRun: q.get('dryRun') === 'All' };
    const parsed = body.length > 0 ? parseJson(body) : undefined;
    switch (verb) {
      case 'get':
        return this.reply(req, res, 200, t, this.registry.get(t, route.namespace, route.name), q);
      case 'list':
        return this.reply(req, res, 200, t, this.registry.list(t, route.namespace, listOptions(q)), q, true);
      case 'watch':
        return this.watch(req, res, route, q);
      case 'create':
        if (t.virtual) return this.send(res, 201, this.review(parsed));
        if (route.name) throw methodNotAllowed();
        return this.send(res, 201, this.registry.create(t, route.namespace, parsed, write));
      case 'update':
        return this.send(res, 200, this.registry.update(t, route.namespace, route.name, route.subresource, parsed, write));
      case 'patch':
        return this.send(res, 200, this.registry.patch(t, route.namespace, route.name, route.subresource, (req.headers['content-type'] ?? '').split(';')[0]!.trim(), parsed, write));
      case 'delete':
        return this.send(res, 200, this.registry.delete(t, route.namespace, route.name, parsed, write));
      case 'deletecollection':
        return this.send(res, 200, this.registry.deleteCollection(t, route.namespace, listOptions(q), write));
      default:
        throw methodNotAllowed();
    }
  }

  private reply(req: IncomingMessage, res: ServerResponse, code: number, t: ResourceType, obj: JsonObject, q: URLSearchParams, isList = false): void {
    if (!wantsTable(req.headers.accept)) return this.send(res, code, obj);
    const include = (q.get('includeObject') ?? 'Metadata') as IncludeObject;
    const items = isList ? (obj.items as JsonObject[]) : [obj];
    const listMeta = isList ? (obj.metadata as JsonObject) : { resourceVersion: (obj.metadata as JsonObject).resourceVersion ?? '' };
    this.send(res, code, toTable(t, items, listMeta, include));
  }

  private watch(req: IncomingMessage, res: ServerResponse, route: Route, q: URLSearchParams): void {
    const t = route.type;
    if (route.name) {
      // A watch on one object is a watch on the collection narrowed to its name.
      const existing = q.get('fieldSelector');
      q.set('fieldSelector', existing ? `${existing},metadata.name=${route.name}` : `metadata.name=${route.name}`);
    }
    const selectors = this.registry.parseSelectors(t, q.get('labelSelector') ?? undefined, q.get('fieldSelector') ?? undefined);
    const timeout = Number(q.get('timeoutSeconds') ?? this.opts.watchTimeoutSeconds);
    const stream = new WatchStream(
      this.registry,
      {
        type: t,
        namespace: route.namespace,
        selectors,
        resourceVersion: q.get('resourceVersion') ?? undefined,
        bookmarks: q.get('allowWatchBookmarks') === 'true' || q.get('allowWatchBookmarks') === '1',
        timeoutMs: (Number.isFinite(timeout) && timeout > 0 ? timeout : this.opts.watchTimeoutSeconds) * 1000,
        bookmarkIntervalMs: this.opts.bookmarkIntervalMs,
        table: wantsTable(req.headers.accept),
      },
      res,
      (w) => this.watches.delete(w),
    );
    this.watches.add(stream);
    stream.start();
  }

  private review(body: unknown): JsonObject {
    if (!isObject(body) || !isObject(body.spec)) throw badRequest('a SelfSubjectAccessReview needs a spec');
    const ra = isObject(body.spec.resourceAttributes) ? body.spec.resourceAttributes : undefined;
    const nra = isObject(body.spec.nonResourceAttributes) ? body.spec.nonResourceAttributes : undefined;
    // As pkg/apis/authorization/validation: exactly one of the two attribute sets.
    if ((ra === undefined) === (nra === undefined)) {
      throw invalid('SelfSubjectAccessReview', '', [fieldInvalid('spec.resourceAttributes', nra ?? 'null', 'exactly one of nonResourceAttributes or resourceAttributes must be specified')], 'authorization.k8s.io');
    }
    // Non-resource paths (/version, /healthz, ...) are open to every authenticated user here, as the
    // default system:discovery and system:public-info-viewer roles make them on a real server.
    let ok = true;
    if (ra) {
      ok = allowed(this.rules, {
        verb: String(ra.verb ?? ''),
        group: String(ra.group ?? ''),
        resource: String(ra.resource ?? ''),
        subresource: String(ra.subresource ?? ''),
        namespace: String(ra.namespace ?? ''),
        name: String(ra.name ?? ''),
      });
    } else {
      ok = String(nra!.verb ?? '') === 'get';
    }
    return {
      kind: 'SelfSubjectAccessReview',
      apiVersion: 'authorization.k8s.io/v1',
      metadata: { creationTimestamp: null },
      spec: body.spec,
      status: ok ? { allowed: true, reason: 'allowed by kube-sim rules' } : { allowed: false },
    };
  }

  private serveNonResource(req: IncomingMessage, res: ServerResponse, path: string): void {
    if (req.method !== 'GET') throw methodNotAllowed();
    if (path === '/version') return this.send(res, 200, versionDoc(this.opts.version));
    if (path === '/healthz' || path === '/livez' || path === '/readyz') {
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('ok');
      return;
    }
    if (path === '/api') return this.send(res, 200, coreVersions(`${this.opts.host}:${this.portNumber}`));
    if (path === '/apis') return this.send(res, 200, groupList());
    if (path === '/openapi/v2') {
      const doc = openApiV2((req.headers.accept ?? '').includes('protobuf'), this.opts.version.gitVersion);
      res.writeHead(200, { 'Content-Type': doc.type, 'Content-Length': doc.body.length });
      res.end(doc.body);
      return;
    }
    const seg = path.split('/').filter(Boolean);
    if (seg[0] === 'api' && seg[1] === 'v1' && seg.length === 2) return this.send(res, 200, resourceList('', 'v1')!);
    if (seg[0] === 'apis' && seg.length === 2) {
      const g = group(seg[1]!);
      if (g) return this.send(res, 200, g);
    }
    if (seg[0] === 'apis' && seg.length === 3) {
      const list = resourceList(seg[1]!, seg[2]!);
      if (list) return this.send(res, 200, list);
    }
    throw pathNotFound();
  }

  private route(path: string): Route | undefined {
    const seg = path.split('/').filter(Boolean).map(decodeURIComponent);
    let group: string;
    let version: string;
    let rest: string[];
    if (seg[0] === 'api' && seg[1] === 'v1' && seg.length > 2) {
      group = '';
      version = 'v1';
      rest = seg.slice(2);
    } else if (seg[0] === 'apis' && seg.length > 3) {
      group = seg[1]!;
      version = seg[2]!;
      rest = seg.slice(3);
    } else return undefined;
    let watchPath = false;
    if (rest[0] === 'watch') {
      watchPath = true;
      rest = rest.slice(1);
    }
    let namespace = '';
    if (rest[0] === 'namespaces' && rest.length >= 3 && !(rest.length === 3 && (rest[2] === 'status' || rest[2] === 'finalize'))) {
      namespace = rest[1]!;
      rest = rest.slice(2);
    }
    const [plural = '', name = '', subresource = '', ...extra] = rest;
    const type = findType(group, version, plural);
    if (!type || extra.length > 0) throw pathNotFound();
    if (namespace && !type.namespaced) throw pathNotFound();
    if (subresource && !type.subresources.includes(subresource)) throw pathNotFound();
    return { type, namespace, name, subresource, watchPath };
  }
}

function verbOf(method: string, route: Route, q: URLSearchParams): string {
  const watch = route.watchPath || q.get('watch') === 'true' || q.get('watch') === '1';
  switch (method) {
    case 'GET':
      return watch ? 'watch' : route.name ? 'get' : 'list';
    case 'POST':
      return 'create';
    case 'PUT':
      return route.name ? 'update' : 'put';
    case 'PATCH':
      return route.name ? 'patch' : 'patchcollection';
    case 'DELETE':
      return route.name ? 'delete' : 'deletecollection';
    default:
      return method.toLowerCase();
  }
}

function listOptions(q: URLSearchParams): ListOptions {
  const limit = q.get('limit');
  if (limit !== null && !/^\d+$/.test(limit)) throw badRequest(`invalid limit: ${limit}`);
  return {
    labelSelector: q.get('labelSelector') ?? undefined,
    fieldSelector: q.get('fieldSelector') ?? undefined,
    limit: limit === null ? undefined : Number(limit),
    continue: q.get('continue') ?? undefined,
  };
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw badRequest(`the body of the request could not be decoded as JSON: ${(err as Error).message}`);
  }
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw new ApiError(413, 'RequestEntityTooLarge', 'Request entity too large: limit is 3145728');
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}
