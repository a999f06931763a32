// The probe targets of the health benchmark, in a process of their own (so the prober's CPU time is its
// own), inside the network namespace the benchmark created: HTTP health servers on kube-proxy's port and on
// every healthCheckNodePort, and a TCP listener on the Service port for the DR probes. Every node address and
// VIP is local through "local" routes on lo, so one socket per port answers for all of them. The health
// servers write a canned kube-proxy answer without parsing HTTP, so that they cost as little as possible
// and the figures are the prober's.
import { createServer as createTcp } from 'node:net';

const [kubeProxyPort, hcnpFirst, hcnpCount, servicePort] = process.argv.slice(2).map(Number) as [number, number, number, number];
const ports = [kubeProxyPort, ...Array.from({ length: hcnpCount }, (_, i) => hcnpFirst + i)];
let listening = 0;
const ready = () => {
  if (++listening === ports.length + 1) process.send?.('ready');
};
const body = JSON.stringify({ lastUpdated: new Date().toISOString(), currentTime: new Date().toISOString(), nodeHealthy: true });
const answer = Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
for (const port of ports) {
  const s = createTcp((sock) => {
    sock.on('error', () => undefined);
    sock.once('data', () => sock.end(answer));
  });
  s.listen({ host: '::', port, backlog: 4096 }, ready);
}
const tcp = createTcp((sock) => {
  sock.on('error', () => undefined);
  sock.resume();
});
tcp.listen({ host: '::', port: servicePort, backlog: 4096 }, ready);
process.on('disconnect', () => process.exit(0));
