// The REST API: read-only views of pools, allocations, Services, the kernel's virtual services, VRRP and
// the audit log; two mutating endpoints; health and Prometheus metrics. Every input is validated against a
// schema that rejects unknown fields (fastify would strip them by default), and every error has one shape:
// {"error": {"code", "message"}}.
import { readFileSync } from 'node:fs';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifySchema } from 'fastify';
import Type from 'typebox';
import { isLoopback } from '../config/schema.js';
import { canonicalIp } from '../ipam/address.js';
import { tokenMatches } from './auth.js';
import { buildOpenApi, type RouteDoc } from './openapi.js';
import type { ApiState } from './state.js';

export interface ApiServerOptions {
  state: ApiState;
  /** The bearer token; mutating endpoints always need it, reads need it off loopback. */
  token: string;
  listen: { host: string; port: number };
  tls?: { certFile: string; keyFile: string };
  bodyLimit?: number;
}

const ErrorCode: Record<number, string> = {
  400: 'BadRequest', 401: 'Unauthorized', 403: 'Forbidden', 404: 'NotFound', 405: 'MethodNotAllowed',
  409: 'Conflict', 413: 'PayloadTooLarge', 415: 'UnsupportedMediaType', 429: 'TooManyRequests', 500: 'Internal', 503: 'Unavailable',
};

export function sendError(reply: FastifyReply, status: number, message: string): FastifyReply {
  return reply.code(status).send({ error: { code: ErrorCode[status] ?? 'Error', message } });
}

const dns = '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$';
const Paging = {
  offset: Type.Optional(Type.Integer({ minimum: 0, default: 0, description: 'items to skip' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100, description: 'page size (1-1000)' })),
};

/** Routes without parameters still refuse unknown ones, so a typo (`?namespce=`) never silently returns everything. */
const noQuery = { querystring: Type.Object({}, { additionalProperties: false }) };

/** The mutating endpoints take no parameters: an empty body or `{}`; anything else is named and refused. */
function rejectBody(req: FastifyRequest, reply: FastifyReply): boolean {
  const b = req.body;
  if (b === undefined || b === null || b === '') return false;
  if (typeof b !== 'object' || Array.isArray(b)) {
    sendError(reply, 400, `body: must be empty or an empty JSON object (got ${JSON.stringify(b).slice(0, 80)})`);
    return true;
  }
  const keys = Object.keys(b);
  if (keys.length === 0) return false;
  sendError(reply, 400, `body: unknown field${keys.length > 1 ? 's' : ''} ${keys.map((k) => `"${k}"`).join(', ')}: this endpoint takes none`);
  return true;
}

export async function buildApiServer(o: ApiServerOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: false,
    bodyLimit: o.bodyLimit ?? 64 * 1024,
    ...(o.tls ? { https: { cert: readFileSync(o.tls.certFile), key: readFileSync(o.tls.keyFile) } } : {}),
    ajv: { customOptions: { removeAdditional: false, allErrors: true, coerceTypes: true, useDefaults: true } },
    // Requests Node's HTTP parser cannot read (malformed framing, oversized headers) get the one error shape too.
    clientErrorHandler: (err: NodeJS.ErrnoException, socket) => {
      if (err.code === 'ECONNRESET' || socket.destroyed || !socket.writable) return;
      const [status, code, what] = err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'RequestHeaderFieldsTooLarge', 'request headers too large'] : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'RequestTimeout', 'request not received in time'] : [400, 'BadRequest', `malformed HTTP request (${err.code ?? 'parse error'})`];
      const body = JSON.stringify({ error: { code, message: what } });
      socket.end(`HTTP/1.1 ${status} ${code}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json; charset=utf-8\r\nConnection: close\r\n\r\n${body}`);
    },
    // A path that is not valid percent-encoding is refused before routing; keep the one error shape.
    frameworkErrors: (err, req, reply) => {
      sendError(reply, 400, err.code === 'FST_ERR_BAD_URL' ? `path: not a valid URL (${JSON.stringify(req.url.slice(0, 100))})` : err.message);
    },
  });
  const readsNeedToken = !isLoopback(o.listen.host);
  const routes: RouteDoc[] = [];
  app.addHook('onRoute', (r) => {
    if (r.method === 'HEAD' || r.url === '*') return;
    routes.push({ method: String(r.method), url: r.url, schema: r.schema as FastifySchema | undefined, description: (r.config as { description?: string } | undefined)?.description ?? '', mutating: r.method === 'POST' });
  });

  app.setErrorHandler((err: Error & { statusCode?: number; validation?: unknown[]; validationContext?: string; code?: string }, _req, reply) => {
    if (err.validation) {
      const parts = (err.validation as Array<{ instancePath?: string; message?: string; params?: Record<string, unknown> }>).map((v) => {
        const where = `${err.validationContext ?? 'request'}${v.instancePath ? v.instancePath.replace(/\//g, '.') : ''}`;
        const extra = v.params?.additionalProperty ? ` (got unknown field "${String(v.params.additionalProperty)}")` : '';
        return `${where}: ${v.message ?? 'is invalid'}${extra}`;
      });
      return sendError(reply, 400, parts.join('; '));
    }
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    const message = status === 500 ? `internal error: ${err.message}` : err.message;
    return sendError(reply, status, message);
  });
  app.setNotFoundHandler((req, reply) => sendError(reply, 404, `no route ${req.method} ${req.url.split('?')[0]}`));

  const auth = (always: boolean) => async (req: FastifyRequest, reply: FastifyReply) => {
    if (!always && !readsNeedToken) return;
    if (!tokenMatches(req.headers.authorization, o.token)) {
      reply.header('www-authenticate', 'Bearer realm="ipvs-lb"');
      return sendError(reply, 401, 'a valid bearer token is required (Authorization: Bearer TOKEN)');
    }
  };
  const read = auth(false);
  const write = auth(true);

  app.get('/healthz', { schema: noQuery, config: { description: 'liveness: the process serves requests' } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: noQuery, config: { description: 'readiness: ledger open, kernel reachable, reconciled at least once; Kubernetes reachability is reported but not required (fail static)' } }, async (_req, reply) => {
    const h = o.state.health();
    return reply.code(h.ready ? 200 : 503).send(h);
  });
  app.get('/metrics', { onRequest: read, schema: noQuery, config: { description: 'Prometheus metrics' } }, async (_req, reply) => {
    const m = await o.state.metrics();
    return reply.type(m.contentType).send(m.body);
  });

  app.get('/api/v1/status', { onRequest: read, schema: noQuery, config: { description: 'this host: allocator role, Services served, last reconcile' } }, async () => o.state.status());
  app.get('/api/v1/pools', { onRequest: read, schema: noQuery, config: { description: 'pools with size, used, free and orphaned addresses' } }, async () => ({ items: o.state.pools() }));
  app.get('/api/v1/allocations', {
    onRequest: read,
    config: { description: 'allocations, filtered and paginated' },
    schema: {
      querystring: Type.Object({
        namespace: Type.Optional(Type.String({ pattern: dns })),
        pool: Type.Optional(Type.String({ pattern: dns })),
        address: Type.Optional(Type.String({ minLength: 2, maxLength: 45 })),
        ...Paging,
      }, { additionalProperties: false }),
    },
  }, async (req, reply) => {
    const q = req.query as { namespace?: string; pool?: string; address?: string; offset: number; limit: number };
    let address = q.address;
    if (address !== undefined) {
      address = canonicalIp(address);
      if (!address) return sendError(reply, 400, `querystring.address: must be an IP address (got ${JSON.stringify(q.address)})`);
    }
    return o.state.allocations({ ...q, address });
  });
  app.get('/api/v1/allocations/:ip', {
    onRequest: read,
    config: { description: 'the allocations of one address (several when shared)' },
    schema: { ...noQuery, params: Type.Object({ ip: Type.String({ maxLength: 45 }) }, { additionalProperties: false }) },
  }, async (req, reply) => {
    const raw = (req.params as { ip: string }).ip;
    const ip = canonicalIp(raw);
    if (!ip) return sendError(reply, 400, `params.ip: must be an IP address (got ${JSON.stringify(raw)})`);
    const items = o.state.allocation(ip);
    if (items.length === 0) return sendError(reply, 404, `address ${ip} is not allocated`);
    return { items };
  });
  app.get('/api/v1/services/:namespace/:name', {
    onRequest: read,
    config: { description: 'one Service: allocation, virtual services, real servers with weight, health and kernel stats' },
    schema: { ...noQuery, params: Type.Object({ namespace: Type.String({ pattern: dns }), name: Type.String({ pattern: dns }) }, { additionalProperties: false }) },
  }, async (req, reply) => {
    const p = req.params as { namespace: string; name: string };
    const v = await o.state.service(p.namespace, p.name);
    if (!v) return sendError(reply, 404, `service ${p.namespace}/${p.name} is not served by ipvs-lb`);
    return v;
  });
  app.get('/api/v1/virtual-services', { onRequest: read, schema: noQuery, config: { description: 'the kernel view: virtual services with stats' } }, async () => ({ items: await o.state.virtualServices() }));
  app.get('/api/v1/vrrp', { onRequest: read, schema: noQuery, config: { description: 'VRRP groups: state, since when, transitions' } }, async () => ({ items: o.state.vrrp() }));
  app.get('/api/v1/events', {
    onRequest: read,
    config: { description: 'the audit log, newest first; page with before=<next of the previous page>' },
    schema: {
      querystring: Type.Object({
        before: Type.Optional(Type.Integer({ minimum: 1, description: 'only entries with a smaller id' })),
        limit: Paging.limit,
      }, { additionalProperties: false }),
    },
  }, async (req) => o.state.events(req.query as { before?: number; limit: number }));

  app.post('/api/v1/reconcile', {
    onRequest: write,
    schema: noQuery,
    config: { description: 'run a full reconcile now (token required); no body, or {}' },
  }, async (req, reply) => (rejectBody(req, reply) ? reply : o.state.reconcile()));
  app.post('/api/v1/config/reload', {
    onRequest: write,
    schema: noQuery,
    config: { description: 're-read and apply the config file; an invalid file is refused whole (token required); no body, or {}' },
  }, async (req, reply) => {
    if (rejectBody(req, reply)) return reply;
    const r = await o.state.reloadConfig();
    if (!r.ok) return reply.code(400).send({ error: { code: 'InvalidConfig', message: `the config file was refused; the running config stays: ${r.problems.join('; ')}` }, problems: r.problems });
    return r;
  });
  app.get('/api/v1/openapi.json', { schema: noQuery, config: { description: 'this document' } }, async () => buildOpenApi(routes));

  await app.ready();
  return app;
}
