// The pure parts of lab/demo: the step runner's output and result, the request-loop analysis, the kube-proxy
// stand-in's plan, and the readers of ipvsadm and kubectl output the demo and the acceptance tests rely on.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseIpvsadm, parseIpvsConns } from '../../lab/demo/ipvsadm.js';
import { applyScript, planKubeProxy, type ServiceLike } from '../../lab/demo/kube-proxy.js';
import { gapAfter, parseLoop, summarize, type LoopRecord } from '../../lab/demo/loop-report.js';
import { runStory } from '../../lab/demo/steps.js';
import { columns, demoAdvertInterval, externalIpOf, watchRows } from '../../lab/demo/story.js';

describe('demo step runner', () => {
  const clock = () => {
    let t = 0;
    return () => (t += 1000);
  };

  it('numbers the steps, prints checks and excerpts, and reports success with the facts', async () => {
    let out = '';
    const r = await runStory([
      { title: 'first', run: async (c) => c.check('one is one', true) },
      { title: 'second', run: async (c) => {
        c.show('cmd', 'a\nb\nc\nd', 2);
        c.fact('failover gap', '420 ms');
      } },
    ], (t) => (out += t), clock());
    assert.equal(r.ok, true);
    assert.equal(r.passed, 2);
    assert.match(out, /^\[1\/2\] first$/m);
    assert.match(out, /✓ one is one/);
    assert.match(out, /\$ cmd\n\s+a\n\s+b\n\s+… \(2 more lines\)/);
    assert.match(out, /^Result: all 2 steps passed in \d+ s \(failover gap 420 ms\)\.$/m);
  });

  it('stops at the first failed check, names the step, and lists the steps not run', async () => {
    let out = '';
    let ranThird = false;
    const r = await runStory([
      { title: 'boot', run: async () => undefined },
      { title: 'curl the VIP', run: async (c) => c.check('all answered', false, '2 failed') },
      { title: 'clean up', run: async () => {
        ranThird = true;
      } },
    ], (t) => (out += t), clock());
    assert.equal(r.ok, false);
    assert.deepEqual([r.failed?.number, r.failed?.title, r.passed], [2, 'curl the VIP', 1]);
    assert.equal(ranThird, false);
    assert.match(out, /✗ all answered: 2 failed/);
    assert.match(out, /\(not run: clean up\)/);
    assert.match(out, /^Result: FAILED at step 2 \(curl the VIP\): all answered: 2 failed$/m);
  });

  it('a step that throws fails like a check, with the message', async () => {
    let out = '';
    const r = await runStory([{ title: 'start', run: async () => {
      throw new Error('timed out waiting for x\nlog line');
    } }], (t) => (out += t), clock());
    assert.equal(r.failed?.message, 'timed out waiting for x\nlog line');
    assert.match(out, /✗ timed out waiting for x\n\s+log line/);
  });
});

describe('request loop analysis', () => {
  const rec = (start: number, end: number, ok: boolean, node = 'node-1'): LoopRecord =>
    ok ? { start, end, ok, body: `node=${node} client=203.0.113.10 clientport=1 local=192.0.2.1 localport=80` } : { start, end, ok, error: 'timeout' };

  it('parses lines in finishing order and sorts them by start; rejects a line that is not a record', () => {
    const text = [JSON.stringify(rec(200, 250, true)), 'noise', JSON.stringify(rec(100, 3100, false)), ''].join('\n');
    assert.deepEqual(parseLoop(text).map((r) => r.start), [100, 200]);
    assert.throws(() => parseLoop('{"start":1}'), /not a request record/);
  });

  it('counts failures, error kinds and answers per node', () => {
    const s = summarize([rec(0, 10, true, 'node-1'), rec(5, 20, true, 'node-2'), rec(7, 3007, false), rec(9, 30, true, 'node-1')]);
    assert.deepEqual(s, { requests: 4, failures: 1, errors: ['timeout'], byNode: { 'node-1': 2, 'node-2': 1 }, slowestMs: 21 });
  });

  it('the gap ends with the earliest answer of a request started after the event, not the earliest request', () => {
    const records = [
      rec(900, 950, true), // before the event
      rec(1000, 2600, true), // started in the gap, answered after a SYN retry
      rec(1100, 4100, false),
      rec(1200, 1450, true),
      rec(1300, 1400, true), // started later, answered first: this ends the gap
    ];
    const g = gapAfter(records, 1000)!;
    assert.deepEqual([g.gapMs, g.firstAnswer.start, g.failedInGap, g.delayedInGap], [400, 1300, 1, 2]);
    assert.equal(gapAfter([rec(1000, 4000, false)], 1000), undefined);
  });
});

describe('kube-proxy stand-in', () => {
  const nodes = [{ name: 'node-1', ip: '198.51.100.11' }, { name: 'node-2', ip: '198.51.100.12' }];
  const lb = (name: string, ip: string | undefined, spec: Partial<NonNullable<ServiceLike['spec']>> = {}): ServiceLike => ({
    metadata: { name, namespace: 'default' },
    spec: { type: 'LoadBalancer', ports: [{ port: 80 }], ...spec },
    status: { loadBalancer: { ingress: ip ? [{ ip, ipMode: 'VIP' }] : [] } },
  });

  it('puts every ingress IP on every node, DNATs port → targetPort and drops Local traffic where no endpoint is', () => {
    const plans = planKubeProxy([
      lb('web', '192.0.2.1'),
      lb('my-service', '192.0.2.2', { ports: [{ port: 60000, targetPort: 8080 }] }),
      lb('local', '192.0.2.3', { externalTrafficPolicy: 'Local' }),
      lb('pending', undefined),
      { ...lb('proxy', '192.0.2.9'), status: { loadBalancer: { ingress: [{ ip: '192.0.2.9', ipMode: 'Proxy' }] } } },
      { metadata: { name: 'cluster-ip', namespace: 'default' }, spec: { type: 'ClusterIP', ports: [{ port: 80 }] } },
    ], [{ metadata: { namespace: 'default', labels: { 'kubernetes.io/service-name': 'local' } }, endpoints: [{ nodeName: 'node-2', conditions: { ready: true } }, { nodeName: 'node-1', conditions: { ready: false } }] }], nodes);
    assert.deepEqual(plans.get('node-1')!.vips, ['192.0.2.1', '192.0.2.2', '192.0.2.3']);
    assert.deepEqual(plans.get('node-2')!.vips, ['192.0.2.1', '192.0.2.2', '192.0.2.3']);
    const r1 = plans.get('node-1')!.rules;
    const r2 = plans.get('node-2')!.rules;
    assert.match(r1, /-A PREROUTING -d 192\.0\.2\.2\/32 -p tcp -m tcp --dport 60000 -j DNAT --to-destination 198\.51\.100\.11:8080/);
    assert.match(r2, /--to-destination 198\.51\.100\.12:8080/);
    assert.match(r1, /-A INPUT -d 192\.0\.2\.3\/32 -p tcp -m tcp --dport 80 -j DROP/);
    assert.doesNotMatch(r2, /DROP/);
    assert.doesNotMatch(r1 + r2, /192\.0\.2\.1\/32|192\.0\.2\.9/);
    for (const r of [r1, r2]) assert.match(r, /^\*nat\n[\s\S]*COMMIT\n\*filter\n[\s\S]*COMMIT\n$/);
  });

  it('refuses what it cannot model and anything that is not a plain value', () => {
    assert.throws(() => planKubeProxy([lb('named', '192.0.2.1', { ports: [{ port: 80, targetPort: 'http' }] })], [], nodes), /named targetPort "http"/);
    const odd = planKubeProxy([lb('bad-ip', '192.0.2.1; reboot')], [], nodes);
    assert.deepEqual(odd.get('node-1')!.vips, []);
    assert.throws(() => applyScript('/tmp/x y', nodes), /bad directory/);
    assert.throws(() => applyScript('/tmp/x', [{ name: 'n;1', ip: '198.51.100.11' }]), /bad node name/);
  });
});

describe('readers of command output', () => {
  it('ipvsadm -Ln: services with scheduler, flags and real servers', () => {
    const t = parseIpvsadm(`IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  192.0.2.1:80 mh (mh-fallback,mh-port)
  -> 198.51.100.11:80             Route   1      0          5
  -> 198.51.100.12:80             Route   0      1          4
TCP  192.0.2.2:60000 rr
  -> 198.51.100.13:60000          Route   1      0          0
`);
    assert.deepEqual([...t.keys()], ['TCP 192.0.2.1:80', 'TCP 192.0.2.2:60000']);
    assert.deepEqual(t.get('TCP 192.0.2.1:80'), { scheduler: 'mh', flags: '(mh-fallback,mh-port)', servers: [{ server: '198.51.100.11:80', forward: 'Route', weight: 1 }, { server: '198.51.100.12:80', forward: 'Route', weight: 0 }] });
    assert.equal(t.get('TCP 192.0.2.2:60000')!.flags, '');
  });

  it('ipvsadm -Ln --stats --exact: connection totals per service and real server', () => {
    const c = parseIpvsConns(`IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  192.0.2.1:80                       12       70        0     4560        0
  -> 198.51.100.11:80                    4       23        0     1520        0
  -> 198.51.100.12:80                    8       47        0     3040        0
`);
    assert.deepEqual([...c], [['TCP 192.0.2.1:80', 12], ['TCP 192.0.2.1:80 -> 198.51.100.11:80', 4], ['TCP 192.0.2.1:80 -> 198.51.100.12:80', 8]]);
  });

  it('kubectl get services --watch rows and their EXTERNAL-IP; table columns re-aligned', () => {
    const log = `NAME         TYPE        CLUSTER-IP      EXTERNAL-IP   PORT(S)   AGE
kubernetes   ClusterIP   203.0.113.129   <none>        443/TCP   3s
whoami       LoadBalancer   203.0.113.130   <pending>     80:31735/TCP   0s
whoami       LoadBalancer   203.0.113.130   192.0.2.1     80:31735/TCP   1s
whoami-2     LoadBalancer   203.0.113.131   <pending>     80:31736/TCP   0s
`;
    assert.deepEqual(watchRows(log, 'whoami').map(externalIpOf), ['<pending>', '192.0.2.1']);
    assert.equal(columns('NAME   STATUS   ROLES\nnode-1   Ready   <none>\n', 2), 'NAME     STATUS\nnode-1   Ready');
  });

  it('the demo\'s VRRP advert interval: 0.5 s unless IPVS_LB_DEMO_ADVERT_INT says otherwise, within keepalived\'s range', () => {
    assert.equal(demoAdvertInterval({}), 0.5);
    assert.equal(demoAdvertInterval({ IPVS_LB_DEMO_ADVERT_INT: '0.1' }), 0.1);
    assert.throws(() => demoAdvertInterval({ IPVS_LB_DEMO_ADVERT_INT: 'fast' }), /IPVS_LB_DEMO_ADVERT_INT: .*got "fast"/);
    assert.throws(() => demoAdvertInterval({ IPVS_LB_DEMO_ADVERT_INT: '0.01' }), /between 0\.05 and 40\.95/);
  });
});
