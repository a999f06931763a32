// Kubernetes API requests for the generator's operations (pure), and the bash the fixture runs in the guest
// to send them with curl: one guest command per step, retrying while the API is down or failing on purpose.
import { A, type Op, type ServiceSpec } from './generator.js';
import { NAMESPACE } from './world.js';

export interface ApiRequest {
  method: 'POST' | 'PATCH' | 'DELETE';
  path: string;
  body: unknown;
  contentType: string;
}

const base = `/api/v1/namespaces/${NAMESPACE}/services`;
const MERGE = 'application/merge-patch+json';

export function serviceManifest(s: ServiceSpec): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: s.name, namespace: NAMESPACE, labels: { app: 'soak' }, annotations: s.annotations },
    spec: {
      type: 'LoadBalancer',
      selector: { app: s.name },
      ports: s.ports.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol, targetPort: p.port })),
      ...(s.loadBalancerIP ? { loadBalancerIP: s.loadBalancerIP } : {}),
    },
  };
}

export function opRequest(op: Op): ApiRequest {
  switch (op.kind) {
    case 'create':
      return { method: 'POST', path: base, body: serviceManifest(op.service), contentType: 'application/json' };
    case 'delete':
      return { method: 'DELETE', path: `${base}/${op.name}`, body: undefined, contentType: 'application/json' };
    case 'edit-ports':
      return { method: 'PATCH', path: `${base}/${op.name}`, contentType: MERGE, body: { spec: { ports: op.ports.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol, targetPort: p.port })) } } };
    case 'edit-annotations':
      return { method: 'PATCH', path: `${base}/${op.name}`, contentType: MERGE, body: { metadata: { annotations: op.set } } };
    case 'request-address':
      return {
        method: 'PATCH', path: `${base}/${op.name}`, contentType: MERGE,
        body: {
          metadata: { annotations: { [A.ips]: op.address !== null && op.via === 'annotation' ? op.address : null } },
          spec: { loadBalancerIP: op.address !== null && op.via === 'field' ? op.address : null },
        },
      };
    case 'share-key':
      return { method: 'PATCH', path: `${base}/${op.name}`, contentType: MERGE, body: { metadata: { annotations: { [A.share]: op.key } } } };
  }
}

/**
 * A bash script that sends the requests in order with curl (bodies are files next to it) and prints one
 * line `OP <i> <http code>` each. Connection failures (000), 429 and 5xx are retried every 300 ms until
 * `retryForMs` has passed: faults must not make the harness lose an operation.
 */
export function requestScript(reqs: readonly ApiRequest[], o: { bodyFile: (i: number) => string; url: string; caFile: string; tokenFile: string; retryForMs: number }): string {
  const lines = [
    'set -u',
    `TOKEN=$(cat ${o.tokenFile})`,
    'send() {',
    '  local i=$1 method=$2 path=$3 ctype=$4 body=$5 code deadline',
    `  deadline=$(( $(date +%s%3N) + ${o.retryForMs} ))`,
    '  while :; do',
    `    if [ -n "$body" ]; then code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 --cacert ${o.caFile} -H "Authorization: Bearer $TOKEN" -H "Content-Type: $ctype" -X "$method" --data-binary "@$body" "${o.url}$path" 2>/dev/null)`,
    `    else code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 --cacert ${o.caFile} -H "Authorization: Bearer $TOKEN" -X "$method" "${o.url}$path" 2>/dev/null); fi`,
    '    case "$code" in 000|429|5??) ;; *) break ;; esac',
    '    [ "$(date +%s%3N)" -gt "$deadline" ] && break',
    '    sleep 0.3',
    '  done',
    '  echo "OP $i $code"',
    '}',
  ];
  reqs.forEach((r, i) => {
    // Paths and content types come from opRequest (fixed alphabet); bodies travel as files, never as text here.
    if (!/^[A-Za-z0-9/._-]+$/.test(r.path)) throw new Error(`request path ${JSON.stringify(r.path)} has unexpected characters`);
    lines.push(`send ${i} ${r.method} ${r.path} ${r.contentType} ${r.body === undefined ? "''" : o.bodyFile(i)}`);
  });
  return `${lines.join('\n')}\n`;
}

/** Parses `OP <i> <code>` lines into the status code per request index. */
export function parseRequestOutput(text: string, count: number): number[] {
  const codes: number[] = new Array(count).fill(0);
  for (const line of text.split('\n')) {
    const m = /^OP (\d+) (\d{3})$/.exec(line.trim());
    if (m) codes[Number(m[1])] = Number(m[2]);
  }
  return codes;
}
