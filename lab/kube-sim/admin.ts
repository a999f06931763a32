// A small admin API under /kube-sim/v1/ (same token), so that a simulator in another process, such as
// `ipvs-lb lab`, can be steered from a shell: faults, watches, restarts, node readiness, endpoint placement.
// Not part of kube-apiserver; no Kubernetes client ever calls it.
import { Cluster } from './cluster.js';
import { isObject, type JsonObject } from './json.js';
import type { KubeSim } from './server.js';
import { ApiError, badRequest, methodNotAllowed, pathNotFound } from './status.js';

export const ADMIN_PREFIX = '/kube-sim/v1/';

export interface AdminReply {
  code: number;
  body: JsonObject;
  /** Work to do after the reply is sent (a restart must not cut its own answer). */
  after?: () => Promise<void>;
}

const clusters = new WeakMap<KubeSim, Cluster>();

function num(v: unknown, field: string, min = 0): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min) throw badRequest(`${field}: must be a number >= ${min} (got ${JSON.stringify(v)})`);
  return v;
}

function strings(v: unknown, field: string): string[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw badRequest(`${field}: must be a list of strings`);
  return v as string[];
}

export function handleAdmin(sim: KubeSim, method: string, path: string, body: unknown): AdminReply {
  const parts = path.slice(ADMIN_PREFIX.length).split('/').filter(Boolean).map(decodeURIComponent);
  const b = isObject(body) ? body : {};
  const ok = (extra: JsonObject = {}): AdminReply => ({ code: 200, body: { ok: true, ...extra } });
  const cluster = clusters.get(sim) ?? new Cluster(sim);
  clusters.set(sim, cluster);
  try {
    switch (`${method} ${parts[0] ?? ''}`) {
      case 'GET requests':
        return { code: 200, body: { total: sim.totalRequests(), byVerbAndResource: sim.requestCounts() } };
      case 'DELETE requests':
        sim.resetCounts();
        return ok();
      case 'POST drop-watches':
        return ok({ dropped: sim.dropWatches({ abrupt: b.abrupt === true }) });
      case 'PUT delay':
        sim.setDelay(num(b.ms, 'ms') ?? 0);
        return ok();
      case 'POST faults': {
        if (b.status !== 429 && b.status !== 500 && b.status !== 503) throw badRequest('status: must be 429, 500 or 503');
        const spec = { status: b.status, retryAfterSeconds: num(b.retryAfterSeconds, 'retryAfterSeconds'), verbs: strings(b.verbs, 'verbs'), resources: strings(b.resources, 'resources') } as const;
        const count = num(b.count, 'count', 1);
        const durationMs = num(b.durationMs, 'durationMs', 1);
        if ((count === undefined) === (durationMs === undefined)) throw badRequest('give exactly one of count and durationMs');
        if (count !== undefined) sim.failNext(count, spec);
        else sim.failFor(durationMs!, spec);
        return ok();
      }
      case 'DELETE faults':
        sim.clearFaults();
        return ok();
      case 'POST compact':
        sim.compact();
        return ok({ resourceVersion: String(sim.store.revision) });
      case 'POST restart': {
        const opts = { wipe: b.wipe === true, compact: b.compact !== false, downMs: num(b.downMs, 'downMs') ?? 0 };
        return { ...ok(), after: () => sim.restart(opts) };
      }
      case 'PUT nodes': {
        if (parts[1] === undefined || parts[2] !== 'ready' || typeof b.ready !== 'boolean') throw badRequest('use PUT /kube-sim/v1/nodes/NAME/ready with {"ready": true|false}');
        cluster.setNodeReady(parts[1], b.ready);
        return ok();
      }
      case 'PUT endpoints': {
        if (parts.length !== 3 || !Array.isArray(b.endpoints)) throw badRequest('use PUT /kube-sim/v1/endpoints/NAMESPACE/SERVICE with {"endpoints": [{"node": "node-1", "ready": true}]}');
        const placements = b.endpoints.map((e, i) => {
          if (!isObject(e) || typeof e.node !== 'string') throw badRequest(`endpoints[${i}].node: required`);
          return { node: e.node, ready: e.ready !== false };
        });
        return ok({ slices: cluster.placeEndpoints(parts[1]!, parts[2]!, placements).map((s) => String((s.metadata as JsonObject).name)) });
      }
      default:
        throw ['requests', 'drop-watches', 'delay', 'faults', 'compact', 'restart', 'nodes', 'endpoints'].includes(parts[0] ?? '') ? methodNotAllowed() : pathNotFound();
    }
  } catch (err) {
    if (err instanceof ApiError) throw err;
    // Cluster helpers throw plain errors for unknown nodes or Services.
    throw new ApiError(404, 'NotFound', (err as Error).message, {});
  }
}
