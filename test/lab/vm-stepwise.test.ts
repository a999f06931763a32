// The stepwise handle later lab tests build on (daemon + keepalived failover, the demo): start processes in
// the background in a namespace, talk to them, kill them, read their logs and files in between.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { applyTopology, ExecFailedError, ExecTimeoutError, startVm, VmDiedError, type Vm, labTimeScale } from '../../lab/vm/index.js';

describe('lab: stepwise control of a running guest', { timeout: (120_000) * labTimeScale() }, () => {
  let vm: Vm;

  before(async () => {
    vm = await startVm({ knobs: { LAB_GREETING: 'hello world; $(not run)' } });
    await applyTopology(vm, {
      nodes: [{ name: 'node1', ip: '198.51.100.11', http: [] }],
      clients: [{ name: 'client1', ip: '198.51.100.50' }],
    });
  });

  after(async () => {
    await vm?.stop();
  });

  it('runs commands with exit code, stdout, stderr, stdin and knobs', async () => {
    const r = await vm.exec('echo "$LAB_GREETING"; echo oops >&2; read -r line; echo "got $line"; exit 3', { input: 'typed\n' });
    assert.equal(r.code, 3);
    assert.equal(r.stdout, 'hello world; $(not run)\ngot typed\n');
    assert.equal(r.stderr, 'oops\n');
    // Arguments are passed as they are, never through a shell.
    const q = await vm.exec(['printf', '%s|', "it's", '$HOME', 'a b']);
    assert.equal(q.stdout, "it's|$HOME|a b|");
    await assert.rejects(vm.run(['false']), ExecFailedError);
  });

  it('starts a background server in a namespace, talks to it, kills it', async () => {
    const server = await vm.spawn('echo-srv', ['socat', '-d', '-d', 'TCP-LISTEN:7000,fork,reuseaddr', 'PIPE'], { ns: 'node1' });
    assert.equal(server.ns, 'node1');
    // The client reaches it across the bridge; retry while socat comes up.
    const talk = `for i in $(seq 50); do out=$(echo ping | socat -t 2 - TCP:198.51.100.11:7000 2>/dev/null) && [ -n "$out" ] && { echo "$out"; exit 0; }; sleep 0.1; done; exit 1`;
    const r = await vm.run(talk, { ns: 'client1' });
    assert.equal(r.stdout, 'ping\n');
    assert.equal(await server.running(), true);

    const stopped = await server.stop();
    assert.deepEqual(stopped, { exitCode: 143, killed: false }, 'socat dies of SIGTERM (128+15)');
    assert.equal(await server.running(), false);
    const refused = await vm.exec(['socat', '-t', '1', '-', 'TCP:198.51.100.11:7000'], { ns: 'client1', input: 'x\n' });
    assert.notEqual(refused.code, 0, 'nothing listens after the kill');
    assert.match(refused.stderr, /Connection refused/);
    // socat -d -d logged the accepted connection into the artifacts.
    assert.match(server.log(), /accepting connection from AF=2 198\.51\.100\.50:/);
    assert.ok(server.logPath.startsWith(vm.artifactsDir));
  });

  it('reports the exit status of a background process that ends by itself', async () => {
    const p = await vm.spawn('short', 'echo "in $(ip -o link show eth0 | cut -d: -f2)"; exit 5', { ns: 'client1' });
    assert.equal(await p.wait(20_000), 5);
    assert.match(p.log(), /^in\s+eth0@if\d+\n$/, 'it ran in client1, whose eth0 is a veth');
    await assert.rejects(vm.spawn('short', ['true']), /already used/);
  });

  it('runs independent commands concurrently', async () => {
    // The first command can only finish after the second one ran: serialized execs would time out.
    const flag = `${vm.runDir}/concurrency-flag`;
    const waiter = vm.exec(`while [ ! -e ${flag} ]; do sleep 0.05; done; echo saw-flag`, { timeoutMs: 30_000 });
    const setter = await vm.exec(['touch', flag]);
    assert.equal(setter.code, 0);
    assert.equal((await waiter).stdout, 'saw-flag\n');
  });

  it('kills a command that runs past its timeout and stays usable', async () => {
    const t0 = Date.now();
    await assert.rejects(vm.exec('echo started; sleep 60', { timeoutMs: 1500 }), (e: unknown) => {
      assert.ok(e instanceof ExecTimeoutError);
      assert.equal(e.stdout, 'started\n');
      return true;
    });
    assert.ok(Date.now() - t0 < 10_000);
    const ps = await vm.run(['ps', '-eo', 'args']);
    assert.doesNotMatch(ps.stdout, /sleep 60/, 'the timed-out command was killed in the guest');
    assert.equal((await vm.exec(['true'])).code, 0);
  });

  it('reads and writes guest files anywhere in the overlay, never on the host', async () => {
    await vm.writeFile('/etc/ipvs-lb/lab-test.yaml', 'a: 1\n');
    assert.equal(await vm.readFile('/etc/ipvs-lb/lab-test.yaml'), 'a: 1\n');
    assert.equal(existsSync('/etc/ipvs-lb/lab-test.yaml'), false, 'the host root is read-only to the guest');
    await assert.rejects(vm.readFile('/nonexistent/file'), ExecFailedError);
  });

  it('rejects a namespace name that could be an option or a path', async () => {
    await assert.rejects(vm.exec(['true'], { ns: '../x' }), /not a valid namespace name/);
    await assert.rejects(vm.exec(['true'], { ns: '-n' }), /not a valid namespace name/);
  });

  it('refuses commands once stopped, and keeps the artifacts until disposed', async () => {
    const artifacts = await vm.stop();
    assert.equal(vm.running, false);
    await assert.rejects(vm.exec(['true']), VmDiedError);
    assert.ok(existsSync(`${artifacts}/logs/echo-srv.log`), 'background logs outlive the VM');
    assert.equal(existsSync(`${vm.runDir}/ctl`), false, 'control files are gone');
    await vm.dispose();
    assert.equal(existsSync(vm.runDir), false);
  });
});
