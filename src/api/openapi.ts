// An OpenAPI 3 document built from the routes as registered, so it cannot drift from the server.
import type { FastifySchema } from 'fastify';
import { version } from '../util/version.js';

export interface RouteDoc {
  method: string;
  url: string;
  schema: FastifySchema | undefined;
  description: string;
  mutating: boolean;
}

type JsonSchema = { properties?: Record<string, JsonSchema & { description?: string }>; required?: string[] };

function parameters(schema: unknown, where: 'query' | 'path') {
  const s = schema as JsonSchema | undefined;
  return Object.entries(s?.properties ?? {}).map(([name, p]) => ({
    name, in: where, required: where === 'path' || (s?.required ?? []).includes(name), schema: p, description: p.description,
  }));
}

export function buildOpenApi(routes: readonly RouteDoc[]) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const path = r.url.replace(/:([A-Za-z]+)/g, '{$1}');
    const op: Record<string, unknown> = {
      summary: r.description,
      parameters: [...parameters(r.schema?.params, 'path'), ...parameters(r.schema?.querystring, 'query')],
      responses: {
        200: { description: 'success' },
        400: { description: 'invalid input', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
        401: { description: 'missing or wrong bearer token' },
      },
      ...(r.mutating ? { security: [{ bearer: [] }] } : {}),
      ...(r.schema?.body ? { requestBody: { required: false, content: { 'application/json': { schema: r.schema.body } } } } : {}),
    };
    (paths[path] ??= {})[r.method.toLowerCase()] = op;
  }
  return {
    openapi: '3.0.3',
    info: { title: 'ipvs-lb', version },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: { Error: { type: 'object', properties: { error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } }, required: ['code', 'message'] } } } },
    },
    paths,
  };
}
