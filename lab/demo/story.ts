// The demo's story, step by step: the walkthrough of shared/seeds (a whoami Service of type LoadBalancer stays
// <pending> until a load balancer gives it an address; then IPVS sends its traffic straight to the nodes),
// done by the real ipvs-lb daemon on two LB hosts with VRRP, and then what an in-cluster announcer cannot do
// quickly: the VRRP master dies and the VIP keeps answering from the other host, a few advert intervals later.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { curlMany, parseWhoami, type GuestProcess } from '../vm/index.js';
import { parseIpvsadm, parseIpvsConns } from './ipvsadm.js';
import { gapAfter, parseLoop, summarize, whoami } from './loop-report.js';
import { API_HOST, CLIENT, daemonConfig, daemonPaths, KUBECONFIG, KUBECTL, LbLab, NODES, ROOT, type LabOptions } from './stack.js';
import type { Step } from './steps.js';

/**
 * VRRP advert interval in the lab. The product default is 0.1 s (failover after three missed adverts, ~0.4 s,
 * on LB hosts of their own). The lab guest is one emulated CPU on a machine shared with everything else: on a
 * loaded machine a realtime process in it was measured stalling past 0.3 s 17 times in 40 s (max 1.1 s), so at
 * 0.1 s the backup keeps claiming the master role. 0.5 s rides out such stalls; IPVS_LB_DEMO_ADVERT_INT=0.1
 * shows the product default on a quiet machine.
 */
export function demoAdvertInterval(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.IPVS_LB_DEMO_ADVERT_INT;
  if (raw === undefined || raw === '') return 0.5;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < 0.05 || v > 40.95) throw new Error(`IPVS_LB_DEMO_ADVERT_INT: must be seconds between 0.05 and 40.95 (got ${JSON.stringify(raw)})`);
  return v;
}

export function demoOptions(env: NodeJS.ProcessEnv = process.env): LabOptions {
  return {
    lbHosts: 2,
    vrrp: true,
    advertIntervalSeconds: demoAdvertInterval(env),
    // The pool of the walkthrough (seeds/000: my-address-pool-1), no address ending in .0 or .255.
    pools: [{ name: 'default', addresses: ['192.0.2.0/24'], avoidBuggyIPs: true }],
  };
}

export const WHOAMI_YAML = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: whoami
  namespace: default
  labels: {app: whoami}
spec:
  replicas: 3
  selector:
    matchLabels: {app: whoami}
  template:
    metadata:
      labels: {app: whoami}
    spec:
      containers:
      - name: whoami
        image: traefik/whoami
        ports: [{name: web, containerPort: 80}]
---
apiVersion: v1
kind: Service
metadata:
  name: whoami
  namespace: default
spec:
  type: LoadBalancer
  selector: {app: whoami}
  ports: [{name: web, port: 80, targetPort: 80}]
`;

const IP_RE = /\b(\d{1,3}(?:\.\d{1,3}){3})\b/;
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** What the steps share: the lab once it is booted, and what earlier steps found. */
export interface DemoState {
  lab?: LbLab;
  vip?: string;
  /** The LB host that holds the VIP now. */
  master?: string;
  stopped?: boolean;
}

/** The rows of `kubectl get svc --watch` output that are about one Service. */
export function watchRows(log: string, name: string): string[] {
  return log.split('\n').filter((l) => l.split(/\s+/)[0] === name);
}

/** The EXTERNAL-IP column of a `kubectl get svc` row (the fourth). */
export function externalIpOf(row: string): string {
  return row.trim().split(/\s+/)[3] ?? '';
}

/** The first n columns of kubectl's table output, re-aligned. */
export function columns(table: string, n: number): string {
  const rows = table.trimEnd().split('\n').map((r) => r.trim().split(/\s{2,}/).slice(0, n));
  const widths = rows.reduce<number[]>((w, r) => r.map((cell, i) => Math.max(w[i] ?? 0, cell.length)), []);
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('   ')).join('\n');
}

export function demoSteps(st: DemoState): Step[] {
  const lab = (): LbLab => {
    if (!st.lab) throw new Error('the lab is not running');
    return st.lab;
  };
  const vip = (): string => {
    if (!st.vip) throw new Error('the Service has no VIP');
    return st.vip;
  };

  return [
    {
      title: 'Boot the lab: a micro-VM with a real Linux kernel that has IPVS',
      async run(c) {
        c.check('kubectl is there (npm run setup unpacks Debian\'s kubectl into .cache/)', existsSync(KUBECTL), KUBECTL);
        st.lab = await LbLab.boot(demoOptions());
        const l = lab();
        const uname = (await l.vm.run(['uname', '-sr'])).stdout.trim();
        c.say(`backend ${l.vm.backend}, guest kernel ${uname}; everything below runs inside it, in network namespaces`);
        const ipvs = (await l.vm.run('modprobe ip_vs && cat /proc/net/ip_vs')).stdout;
        c.check('the guest kernel has IPVS', ipvs.includes('IP Virtual Server'), ipvs);
      },
    },
    {
      title: 'Build the network: two LB hosts, three nodes, a client behind a router, a host for the Kubernetes API',
      async run(c) {
        const l = lab();
        await l.buildNetwork();
        c.say('client 203.0.113.10 ── router ── LAN 198.51.100.0/24: lb1 .2, lb2 .3, API host .5, node-1..3 .11-.13');
        c.say('each node runs an HTTP server that answers with its name and the client address it saw (the "pod")');
        const ns = (await l.vm.run(['ip', 'netns', 'list'])).stdout;
        const want = ['lb1', 'lb2', API_HOST.name, ...NODES.map((n) => n.name), CLIENT.name, 'router'];
        const missing = want.filter((n) => !new RegExp(`^${escape(n)}\\b`, 'm').test(ns));
        c.check(`namespaces ${want.join(', ')} exist`, missing.length === 0, `missing ${missing.join(', ')}`);
      },
    },
    {
      title: 'Start the Kubernetes API simulator with a three-node cluster (ipvs-lb lab)',
      async run(c) {
        const l = lab();
        await l.startApiServer();
        const nodes = await l.kubectl(['get', 'nodes', '-o', 'wide']);
        c.show('kubectl get nodes -o wide   # first columns', columns(nodes, 6));
        const ready = NODES.filter((n) => new RegExp(`^${escape(n.name)}\\s+Ready\\b.*\\s${escape(n.ip)}\\s`, 'm').test(nodes));
        c.check('node-1, node-2 and node-3 are Ready with their InternalIPs', ready.length === 3, nodes);
      },
    },
    {
      title: 'Start `ipvs-lb daemon` with keepalived on lb1 and lb2 (VRRP group a: lb1 priority 150, lb2 100)',
      async run(c) {
        const l = lab();
        const advert = l.options.advertIntervalSeconds ?? 0.1;
        c.say(`VRRP advert_int ${advert} s${advert !== 0.1 ? ' (the product default is 0.1 s; the lab guest shares one emulated CPU with everything else, see IPVS_LB_DEMO_ADVERT_INT in docs/lab.md)' : ''}`);
        const cfg = daemonConfig(l.lb('lb1'), l.options);
        await l.writeConfig('lb1');
        c.show(`cat ${daemonPaths('lb1').config}   # lb1's config: the pool and the VRRP group`, stringify({ pools: cfg.pools, vrrp: cfg.vrrp }), 24);
        await l.startDaemon('lb1');
        await l.waitFor('lb1 to become VRRP master', async () => ((await l.vrrpState('lb1')) === 'MASTER' ? true : undefined), 60_000, () => l.daemon('lb1')?.log().slice(-3000) ?? '');
        await l.startDaemon('lb2');
        await l.waitFor('lb2 to settle as VRRP backup', async () => ((await l.vrrpState('lb2')) === 'BACKUP' ? true : undefined), 60_000, () => l.daemon('lb2')?.log().slice(-3000) ?? '');
        const conf = await l.vm.readFile(daemonPaths('lb1').keepalivedConf);
        c.show(`grep -A6 vrrp_instance ${daemonPaths('lb1').keepalivedConf}   # rendered by the daemon`, conf.slice(conf.indexOf('vrrp_instance')).split('\n').slice(0, 7).join('\n'));
        const ka = (await l.vm.run('for n in lb1 lb2; do echo "$n: $(ip netns pids $n | xargs -r ps -o comm= -p | sort | uniq -c | tr -s " " | tr "\\n" " ")"; done')).stdout;
        c.show('processes per LB host', ka);
        c.check('both daemons are ready and each runs its keepalived', /lb1:.*keepalived/.test(ka) && /lb2:.*keepalived/.test(ka), ka);
        st.master = 'lb1';
        c.check('lb1 is VRRP MASTER, lb2 BACKUP', (await l.vrrpState('lb1')) === 'MASTER' && (await l.vrrpState('lb2')) === 'BACKUP');
      },
    },
    {
      title: 'Apply the whoami Deployment and Service (type LoadBalancer) with kubectl; watch EXTERNAL-IP',
      async run(c) {
        const l = lab();
        const watch: GuestProcess = await l.vm.spawn('kubectl-get-svc-watch', [KUBECTL, '--kubeconfig', KUBECONFIG, 'get', 'services', '--watch'], { ns: API_HOST.name });
        try {
          await l.waitFor('kubectl get services --watch to list', async () => (/^kubernetes\s/m.test(watch.log()) ? true : undefined));
          c.show('kubectl apply -f whoami.yaml', await l.apply('whoami', WHOAMI_YAML));
          // The simulator runs no controllers: put the Deployment's three pods on the three nodes, as the
          // scheduler and the EndpointSlice controller would.
          await l.placeEndpoints('default', 'whoami', NODES.map((n) => n.name));
          c.say('(the simulator has no scheduler: the lab places the three whoami pods on node-1, node-2, node-3)');
          const ip = await l.waitFor('an EXTERNAL-IP for whoami', async () => {
            const row = watchRows(watch.log(), 'whoami').find((r) => IP_RE.test(externalIpOf(r)));
            return row ? externalIpOf(row) : undefined;
          });
          await watch.stop();
          const rows = watchRows(watch.log(), 'whoami');
          const header = watch.log().split('\n').find((x) => x.startsWith('NAME')) ?? '';
          c.show('kubectl get services --watch', [header, ...rows].join('\n'));
          c.check('whoami was listed first with EXTERNAL-IP <pending>', externalIpOf(rows[0] ?? '') === '<pending>', rows[0]);
          c.check(`then with EXTERNAL-IP ${ip}`, externalIpOf(rows.at(-1) ?? '') === ip);
          const ingress = await l.ingressOf('default', 'whoami');
          c.check(`status.loadBalancer.ingress is [{ip: ${ip}, ipMode: VIP}]`, ingress?.ip === ip && ingress.ipMode === 'VIP', JSON.stringify(ingress));
          c.check(`${ip} is from the pool 192.0.2.0/24 and does not end in .0 (avoidBuggyIPs)`, ip.startsWith('192.0.2.') && !ip.endsWith('.0') && !ip.endsWith('.255'));
          st.vip = ip;
        } finally {
          if (await watch.running()) await watch.stop();
        }
      },
    },
    {
      title: 'The nodes accept the VIP, as kube-proxy does for an ingress IP with ipMode VIP',
      async run(c) {
        const l = lab();
        await l.syncKubeProxy();
        c.say('(the lab has no kube-proxy: a stand-in puts the VIP on the NOARP dummy kube-ipvs0, like IPVS mode with strictARP)');
        const addr = (await l.vm.run(['ip', '-o', '-4', 'addr', 'show', 'dev', 'kube-ipvs0'], { ns: 'node-1' })).stdout;
        c.show('ip -n node-1 -o -4 addr show dev kube-ipvs0', addr.replace(/\\\s+/g, ' '));
        for (const n of NODES) {
          const a = (await l.vm.run(['ip', '-o', '-4', 'addr', 'show', 'dev', 'kube-ipvs0'], { ns: n.name })).stdout;
          c.check(`${n.name} holds ${vip()} on kube-ipvs0`, a.includes(`inet ${vip()}/32`), a);
        }
      },
    },
    {
      title: 'Curl the VIP from the client: the replies come from different nodes',
      async run(c) {
        const l = lab();
        const bodies = await curlMany(l.vm, CLIENT.name, `http://${vip()}/`, 12);
        c.show(`curl http://${vip()}/   # 12 times, a new connection each (client ${CLIENT.ip})`, bodies.join('\n'), 6);
        const failed = bodies.filter((b) => b.startsWith('curl-failed'));
        c.check('all 12 requests were answered', failed.length === 0, failed.join('; '));
        const answers = bodies.map(parseWhoami);
        const tally = new Map<string, number>();
        for (const a of answers) tally.set(a.node, (tally.get(a.node) ?? 0) + 1);
        c.say(`answers per node: ${[...tally].sort().map(([n, k]) => `${n} ×${k}`).join(', ')} (scheduler mh, Maglev hashing of address and port)`);
        c.check('they came from more than one node', tally.size >= 2, JSON.stringify([...tally]));
        c.check(`every node saw the client's own address ${CLIENT.ip} (direct routing keeps it)`, answers.every((a) => a.client === CLIENT.ip), JSON.stringify(answers.map((a) => a.client)));
      },
    },
    {
      title: 'What the LB hosts hold: `ipvs-lb status` and the IPVS table',
      async run(c) {
        const l = lab();
        const status = await l.cli('lb1', ['status']);
        c.show('ipvs-lb status   # on lb1', status.stdout + status.stderr);
        c.check('ipvs-lb status on lb1 says ready (exit 0)', status.code === 0 && /ready: yes/.test(status.stdout), status.stderr);
        const key = `TCP ${vip()}:80`;
        for (const name of ['lb1', 'lb2']) {
          const text = await l.waitFor(`the virtual service on ${name}`, async () => {
            const t = await l.ipvsadm(name, '-Ln');
            return (parseIpvsadm(t).get(key)?.servers.length ?? 0) === 3 ? t : undefined;
          }, 30_000);
          if (name === 'lb1') c.show('ipvsadm -Ln   # on lb1', text);
          const vs = parseIpvsadm(text).get(key)!;
          const servers = vs.servers;
          c.check(`${name}: virtual service ${vip()}:80 (mh) → node-1..3 :80 by direct routing ("Route")`,
            vs.scheduler === 'mh' && NODES.every((n) => servers.some((s) => s.server === `${n.ip}:80` && s.forward === 'Route' && s.weight > 0)), text);
        }
        const on1 = await l.vipsOn('lb1');
        const on2 = await l.vipsOn('lb2');
        c.show('ip -o -4 addr show dev eth0   # VIPs on lb1, then lb2', `lb1: ${on1.join(' ') || '(none)'}\nlb2: ${on2.join(' ') || '(none)'}`);
        c.check(`the VIP is bound on the master lb1 only; lb2 is ready with the same table`, on1.includes(vip()) && !on2.includes(vip()));
      },
    },
    {
      title: 'Kill the VRRP master: lb1 dies (NIC down, daemon and keepalived SIGKILLed) while a client keeps asking',
      async run(c) {
        const l = lab();
        const loop = await l.vm.spawn('request-loop', ['node', join(ROOT, 'dist', 'lab', 'demo', 'request-loop.js'), `http://${vip()}/`, '--interval', '100', '--timeout', '3000'], { ns: CLIENT.name });
        try {
          await l.waitFor('the client loop to get steady answers', async () => {
            const s = summarize(parseLoop(loop.log()));
            return s.requests - s.failures >= 10 ? true : undefined;
          }, 60_000, () => loop.log().slice(-2000));
          // lb2's own count of connections it scheduled (connections lb1's sync daemon sent over do not count).
          const conns2 = async () => parseIpvsConns(await l.ipvsadm('lb2', '-Ln', '--stats', '--exact')).get(`TCP ${vip()}:80`) ?? 0;
          const scheduledBefore = await conns2();
          // Timestamp after the link went down: the moment lb1 stopped forwarding, on the guest's clock.
          const killedAt = Number((await l.vm.run('ip -n lb1 link set eth0 down && date +%s%3N')).stdout.trim());
          await l.stopDaemon('lb1', 'KILL');
          c.say('lb1: eth0 down, ipvs-lb daemon and its keepalived killed with SIGKILL (like a power cut)');
          await l.waitFor('lb2 to become VRRP master', async () => ((await l.vrrpState('lb2')) === 'MASTER' ? true : undefined), 30_000, () => l.daemon('lb2')?.log().slice(-3000) ?? '');
          const gap = await l.waitFor('answers through lb2', async () => gapAfter(parseLoop(loop.log()), killedAt), 30_000, () => loop.log().slice(-2000));
          await l.waitFor('10 more answers after the failover', async () => (parseLoop(loop.log()).filter((r) => r.ok && r.start > gap.firstAnswer.end).length >= 10 ? true : undefined), 60_000);
          await loop.stop();
          const records = parseLoop(loop.log());
          const after = records.filter((r) => r.start >= killedAt);
          const s = summarize(after);
          const lastBefore = [...records].reverse().find((r) => r.ok && r.start < killedAt);
          c.show('request loop around the failover (ms relative to lb1\'s death)', [
            lastBefore ? `${lastBefore.start - killedAt} ms: answered by ${whoami(lastBefore)?.node} via lb1` : '',
            '0 ms: lb1 dies',
            `${gap.firstAnswer.end - killedAt} ms: first answer of a new connection, ${whoami(gap.firstAnswer)?.node} via lb2`,
            `${after.length} requests after the kill: ${s.requests - s.failures} answered, ${s.failures} failed${s.errors.length ? ` (${s.errors.join(', ')})` : ''}, ${gap.delayedInGap} answered late after a TCP SYN retry`,
          ].filter(Boolean).join('\n'));
          c.fact('failover gap', `${gap.gapMs} ms`);
          const on2 = await l.vipsOn('lb2');
          c.check(`lb2 is VRRP MASTER and holds ${vip()}`, on2.includes(vip()), on2.join(' '));
          c.check(`the VIP kept answering from lb2: first new connection answered ${gap.gapMs} ms after lb1 died`, gap.gapMs >= 0 && s.requests - s.failures >= 10);
          // IPVS updates its counters every 2 s: poll.
          const scheduled = await l.waitFor('lb2\'s IPVS counters to show the new connections', async () => {
            const n = await conns2();
            return n >= scheduledBefore + 10 ? n : undefined;
          }, 30_000);
          c.check(`lb2 scheduled them: its IPVS connection count for ${vip()}:80 went from ${scheduledBefore} to ${scheduled}`, scheduled >= scheduledBefore + 10);
          const status = await l.cli('lb2', ['status']);
          c.show('ipvs-lb status   # on lb2', status.stdout.split('\n').slice(0, 5).join('\n'));
          st.master = 'lb2';
        } finally {
          if (await loop.running()) await loop.stop();
        }
      },
    },
    {
      title: 'Delete the Service: the IPVS service and the VIP go',
      async run(c) {
        const l = lab();
        c.show('kubectl delete -f whoami.yaml', await l.kubectl(['delete', '-f', '/tmp/manifests/whoami.yaml']));
        const host = st.master ?? 'lb2';
        const table = await l.waitFor(`the virtual service to leave ${host}`, async () => {
          const t = await l.ipvsadm(host, '-Ln');
          return t.includes(`${vip()}:80`) ? undefined : t;
        }, 60_000, () => l.daemon(host)?.log().slice(-3000) ?? '');
        c.show(`ipvsadm -Ln   # on ${host}`, table);
        c.check(`no IPVS service for ${vip()} on ${host}`, !table.includes(vip()));
        await l.waitFor(`${vip()} to be released on ${host}`, async () => ((await l.vipsOn(host)).includes(vip()) ? undefined : true), 30_000);
        c.check(`${vip()} is no longer bound on ${host}`, !(await l.vipsOn(host)).includes(vip()));
        const r = await l.vm.exec(['curl', '-sS', '--max-time', '2', `http://${vip()}/`], { ns: CLIENT.name });
        c.check(`curl http://${vip()}/ gets no answer any more (curl exit ${r.code})`, r.code !== 0, r.stdout);
      },
    },
    {
      title: 'Clean up: power the VM off; nothing is left on this machine',
      async run(c) {
        const l = lab();
        const { runDir, id } = l.vm;
        const pid = l.vm.pid;
        await l.vm.dispose();
        st.stopped = true;
        const alive = pid !== undefined && (() => {
          try {
            process.kill(-pid, 0);
            return true;
          } catch {
            return false;
          }
        })();
        c.check(`the VM's processes are gone (process group ${pid})`, !alive);
        c.check(`its directories are gone (${runDir}, /dev/shm/ipvs-lb-lab-${id})`, !existsSync(runDir) && !existsSync(`/dev/shm/ipvs-lb-lab-${id}`));
      },
    },
  ];
}
