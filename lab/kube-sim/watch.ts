// One watch stream: newline-delimited JSON events on a chunked response, as kube-apiserver sends them.
// It starts from a resourceVersion (replaying history), or with synthetic ADDED events for the current state
// when none (or "0") is given; sends BOOKMARKs when asked; ends cleanly at its timeout; and reports a
// compacted start revision as an ERROR event carrying a 410 Expired Status, inside a 200 response.
import type { ServerResponse } from 'node:http';
import { isObject, type JsonObject } from './json.js';
import type { Registry, Selectors } from './registry.js';
import { apiVersionOf, type ResourceType } from './resources.js';
import type { Change } from './store.js';
import { toTable } from './table.js';

const SLOW_WATCHER_BYTES = 16 * 1024 * 1024;

export interface WatchRequest {
  type: ResourceType;
  namespace: string;
  selectors: Selectors;
  resourceVersion: string | undefined;
  bookmarks: boolean;
  timeoutMs: number;
  bookmarkIntervalMs: number;
  table: boolean;
}

export class WatchStream {
  private unsubscribe: (() => void) | undefined;
  private timers: NodeJS.Timeout[] = [];
  private closed = false;
  private lastRv: number;

  constructor(
    private readonly registry: Registry,
    private readonly req: WatchRequest,
    private readonly res: ServerResponse,
    private readonly onClose: (w: WatchStream) => void,
  ) {
    this.lastRv = registry.store.revision;
  }

  start(): void {
    const { registry, req } = this;
    const store = registry.store;
    this.res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' });
    // kube-apiserver flushes the headers at once; a client waiting for them (client-node's Watch returns
    // its abort handle only then) would otherwise hang until the first event.
    this.res.flushHeaders();
    this.res.on('close', () => this.close(false));
    const rv = req.resourceVersion;
    if (rv === undefined || rv === '' || rv === '0') {
      for (const [, obj] of store.list(req.type.storage)) {
        const ext = registry.external(req.type, obj);
        if (registry.matches(req.type, req.selectors, req.namespace, ext)) this.send('ADDED', ext);
      }
    } else {
      const from = Number(rv);
      const changes = Number.isInteger(from) && from >= 0 ? store.changesSince(req.type.storage, from) : undefined;
      if (!changes) {
        this.sendError(410, 'Expired', Number.isInteger(from) ? `too old resource version: ${rv} (${store.compacted})` : `invalid resource version: ${rv}`);
        this.close(true);
        return;
      }
      for (const c of changes) this.deliver(c);
    }
    this.unsubscribe = store.subscribe(req.type.storage, (c) => this.deliver(c));
    if (req.bookmarks && req.bookmarkIntervalMs > 0) {
      const t = setInterval(() => this.bookmark(), req.bookmarkIntervalMs);
      t.unref();
      this.timers.push(t);
    }
    const t = setTimeout(() => this.close(true), req.timeoutMs);
    t.unref();
    this.timers.push(t);
  }

  /** Ends the stream: cleanly (the client sees the end of a response) or by resetting the connection. */
  close(clean: boolean): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe?.();
    for (const t of this.timers) clearTimeout(t);
    if (clean) this.res.end();
    else this.res.destroy();
    this.onClose(this);
  }

  private deliver(c: Change): void {
    const { registry, req } = this;
    const ext = registry.external(req.type, c.object);
    const now = registry.matches(req.type, req.selectors, req.namespace, ext);
    const before = c.prev ? registry.matches(req.type, req.selectors, req.namespace, registry.external(req.type, c.prev)) : false;
    // A change that moves an object into or out of the selection is an ADDED or DELETED for this watcher.
    if (c.type === 'DELETED') {
      if (before || now) this.send('DELETED', ext);
    } else if (now && before) this.send('MODIFIED', ext);
    else if (now) this.send('ADDED', ext);
    else if (before) this.send('DELETED', ext);
    this.lastRv = c.rv;
  }

  private bookmark(): void {
    if (this.closed) return;
    const rv = Math.max(this.lastRv, this.registry.store.revision);
    this.write({ type: 'BOOKMARK', object: { kind: this.req.type.kind, apiVersion: apiVersionOf(this.req.type), metadata: { resourceVersion: String(rv) } } });
  }

  private send(type: 'ADDED' | 'MODIFIED' | 'DELETED', obj: JsonObject): void {
    if (this.req.table) {
      const m = isObject(obj.metadata) ? obj.metadata : {};
      this.write({ type, object: toTable(this.req.type, [obj], { resourceVersion: m.resourceVersion ?? '' }, 'Object') });
    } else this.write({ type, object: obj });
  }

  private sendError(code: number, reason: string, message: string): void {
    this.write({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code } });
  }

  private write(event: JsonObject): void {
    if (this.closed || this.res.writableEnded) return;
    this.res.write(`${JSON.stringify(event)}\n`);
    // Like the real server, a watcher that stops reading is cut off rather than buffered without bound.
    if (this.res.writableLength > SLOW_WATCHER_BYTES) this.close(false);
  }
}
