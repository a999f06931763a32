// Failures as kube-apiserver reports them: a meta/v1 Status with reason, message, code and details. Clients
// (client-go, client-node, kubectl) branch on `reason` and `code`, and users read `message`, so both follow
// the real server's wording.
import type { JsonObject } from './json.js';

export interface Cause {
  reason: string;
  message: string;
  field: string;
}

export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: JsonObject,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  toStatus(): JsonObject {
    const s: JsonObject = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: this.message, reason: this.reason };
    if (this.details) s.details = this.details;
    s.code = this.code;
    return s;
  }
}

export const notFound = (resource: string, name: string, group = ''): ApiError =>
  new ApiError(404, 'NotFound', `${group ? `${resource}.${group}` : resource} "${name}" not found`, detailsOf(resource, name, group));

export const pathNotFound = (): ApiError => new ApiError(404, 'NotFound', 'the server could not find the requested resource', {});

export const alreadyExists = (resource: string, name: string, group = ''): ApiError =>
  new ApiError(409, 'AlreadyExists', `${group ? `${resource}.${group}` : resource} "${name}" already exists`, detailsOf(resource, name, group));

export const conflict = (resource: string, name: string, group = ''): ApiError =>
  new ApiError(
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${group ? `${resource}.${group}` : resource} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
    detailsOf(resource, name, group),
  );

export const badRequest = (message: string): ApiError => new ApiError(400, 'BadRequest', message);

export const methodNotAllowed = (): ApiError =>
  new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource', {});

export const unsupportedMediaType = (type: string): ApiError =>
  new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got ${type || 'none'})`);

export const unauthorized = (): ApiError => new ApiError(401, 'Unauthorized', 'Unauthorized');

export const gone = (message: string): ApiError => new ApiError(410, 'Expired', message);

export function forbidden(user: string, verb: string, resource: string, group: string, namespace: string, name: string): ApiError {
  const where = namespace ? `in the namespace "${namespace}"` : 'at the cluster scope';
  const what = name ? `${resource} "${name}"` : resource;
  return new ApiError(
    403,
    'Forbidden',
    `${what} is forbidden: User "${user}" cannot ${verb} resource "${resource}" in API group "${group}" ${where}`,
    { ...(name ? { name } : {}), ...(group ? { group } : {}), kind: resource },
  );
}

/** 422 Invalid, naming every offending field the way apimachinery's field.ErrorList does. */
export function invalid(kind: string, name: string, causes: Cause[], group = ''): ApiError {
  const list = causes.map((c) => `${c.field}: ${c.message}`);
  const summary = list.length === 1 ? list[0] : `[${list.join(', ')}]`;
  return new ApiError(422, 'Invalid', `${kind}${group ? `.${group}` : ''} "${name}" is invalid: ${summary}`, {
    name,
    ...(group ? { group } : {}),
    kind,
    causes: causes.map((c) => ({ reason: c.reason, message: c.message, field: c.field })),
  });
}

export const tooManyRequests = (retryAfterSeconds: number): ApiError =>
  new ApiError(429, 'TooManyRequests', 'Too many requests, please try again later.', { retryAfterSeconds }, { 'Retry-After': String(retryAfterSeconds) });

export const internalError = (message: string): ApiError =>
  new ApiError(500, 'InternalError', `Internal error occurred: ${message}`, { causes: [{ message }] });

export const serviceUnavailable = (retryAfterSeconds: number): ApiError =>
  new ApiError(503, 'ServiceUnavailable', 'The server is currently unable to handle the request', { retryAfterSeconds }, { 'Retry-After': String(retryAfterSeconds) });

function detailsOf(resource: string, name: string, group: string): JsonObject {
  return { name, ...(group ? { group } : {}), kind: resource };
}

/** Field error helpers, worded like k8s.io/apimachinery/pkg/util/validation/field. */
export const fieldInvalid = (field: string, value: unknown, detail: string): Cause => ({
  reason: 'FieldValueInvalid',
  field,
  message: `Invalid value: ${JSON.stringify(value)}: ${detail}`,
});
export const fieldRequired = (field: string, detail = ''): Cause => ({
  reason: 'FieldValueRequired',
  field,
  message: detail ? `Required value: ${detail}` : 'Required value',
});
export const fieldUnsupported = (field: string, value: unknown, allowed: readonly string[]): Cause => ({
  reason: 'FieldValueNotSupported',
  field,
  message: `Unsupported value: ${JSON.stringify(value)}: supported values: ${allowed.map((a) => `"${a}"`).join(', ')}`,
});
export const fieldDuplicate = (field: string, value: unknown): Cause => ({
  reason: 'FieldValueDuplicate',
  field,
  message: `Duplicate value: ${JSON.stringify(value)}`,
});
export const fieldForbidden = (field: string, detail: string): Cause => ({ reason: 'FieldValueForbidden', field, message: `Forbidden: ${detail}` });
export const fieldImmutable = (field: string, value: unknown): Cause => ({
  reason: 'FieldValueInvalid',
  field,
  message: `Invalid value: ${JSON.stringify(value)}: field is immutable`,
});
