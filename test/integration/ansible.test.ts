// The ansible role, run for real: ansible-playbook (connection: local) installs a release built by
// ansible/build-release.sh into a throwaway root, and the test checks what a user would find on an LB host.
// Packages and services are switched off and users are created with systemd-sysusers --root inside the temp
// root, so nothing outside the temp directory changes.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parse } from 'yaml';

const run = promisify(execFile);
const root = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');
const ansibleDir = join(root, 'ansible');
const projectUnit = join(root, 'systemd', 'ipvs-lb.service');

interface Result {
  code: number;
  out: string;
}

/** Runs a command; a non-zero exit is a result to assert on, not an exception. */
async function sh(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Result> {
  try {
    const { stdout, stderr } = await run(cmd, args, { ...opts, maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, out: `${stdout}${stderr}` };
  } catch (e) {
    const err = e as { code?: number | string; stdout?: string; stderr?: string };
    if (typeof err.code !== 'number') throw e;
    return { code: err.code, out: `${err.stdout ?? ''}${err.stderr ?? ''}` };
  }
}

/** The counters of the PLAY RECAP line of one host. */
function recap(out: string, host = 'localhost'): Record<string, number> {
  const line = out.split('\n').find((l) => l.startsWith(`${host} `) && l.includes('ok='));
  assert.ok(line, `no PLAY RECAP for ${host} in:\n${out.slice(-3000)}`);
  return Object.fromEntries([...line.matchAll(/(\w+)=(\d+)/g)].map((m) => [m[1], Number(m[2])]));
}

describe('ansible role ipvs_lb', () => {
  let tmp = '';
  let env: NodeJS.ProcessEnv = {};
  let lbRoot = '';
  let tarball = '';
  let inventory = '';

  /** The variables of a test host; `over` replaces or adds some. */
  const vars = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
    ipvs_lb_root: lbRoot,
    ipvs_lb_manage_packages: false,
    ipvs_lb_manage_users: true,
    ipvs_lb_manage_services: false,
    // The group ipvs-lb exists only inside the temp root, and chown resolves names on this machine.
    ipvs_lb_group: 'root',
    ipvs_lb_release_tarball: tarball,
    ipvs_lb_host_name: 'lb1',
    ipvs_lb_interface: 'eth0',
    ipvs_lb_pools: [
      { name: 'default', addresses: ['192.0.2.0/24'], avoidBuggyIPs: true, vrrpGroup: 'a' },
      { name: 'second', addresses: ['203.0.113.0/25'], vrrpGroup: 'b' },
    ],
    ipvs_lb_vrrp_groups: [
      { name: 'a', virtualRouterId: 51 },
      { name: 'b', virtualRouterId: 52, peers: ['198.51.100.99'] },
    ],
    ipvs_lb_vrrp_priority: { a: 150, b: 100 },
    ipvs_lb_kubeconfig: 'apiVersion: v1\nkind: Config\nclusters: []\n',
    ipvs_lb_api_token: 'test-token-0123456789',
    ...over,
  });

  let varsFiles = 0;
  async function play(v: Record<string, unknown>): Promise<Result> {
    const file = join(tmp, `vars-${++varsFiles}.json`);
    writeFileSync(file, JSON.stringify(v));
    return sh('ansible-playbook', ['-i', inventory, join(ansibleDir, 'tests', 'local.yml'), '-e', `@${file}`], { cwd: ansibleDir, env });
  }

  /** A copy of the release under another version, as the next build of the project would be. */
  async function releaseAs(version: string, release: Record<string, string> = {}): Promise<string> {
    const dir = join(tmp, `repack-${version}`);
    mkdirSync(dir);
    assert.equal((await sh('tar', ['-xzf', tarball, '-C', dir])).code, 0);
    for (const name of ['package.json', 'release.json']) {
      const p = join(dir, 'package', name);
      writeFileSync(p, JSON.stringify({ ...JSON.parse(readFileSync(p, 'utf8')), version, ...(name === 'release.json' ? release : {}) }, null, 2));
    }
    const out = join(tmp, 'rel', `ipvs-lb-${version}.tgz`);
    assert.equal((await sh('tar', ['--use-compress-program=gzip -1', '-cf', out, '-C', dir, 'package'])).code, 0);
    rmSync(dir, { recursive: true, force: true });
    return out;
  }

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'ipvs-lb-ansible-'));
    lbRoot = join(tmp, 'root');
    // Ansible and ansible-lint keep caches and temp files under HOME and these dirs: all inside tmp.
    for (const d of ['home', 'ansible-local', 'ansible-remote', 'rel']) mkdirSync(join(tmp, d));
    env = {
      PATH: process.env.PATH,
      LANG: 'C.UTF-8',
      HOME: join(tmp, 'home'),
      XDG_CACHE_HOME: join(tmp, 'home', '.cache'),
      ANSIBLE_CONFIG: join(ansibleDir, 'ansible.cfg'),
      ANSIBLE_LOCAL_TEMP: join(tmp, 'ansible-local'),
      ANSIBLE_REMOTE_TEMP: join(tmp, 'ansible-remote'),
      ANSIBLE_NOCOLOR: '1',
      NO_COLOR: '1',
    };
    // localhost plays lb1; lb2 is only a peer whose address the role reads (it is never contacted).
    inventory = join(tmp, 'inventory.yml');
    writeFileSync(
      inventory,
      [
        'ipvs_lb:',
        '  hosts:',
        '    localhost:',
        '      ansible_connection: local',
        `      ansible_python_interpreter: /usr/bin/python3`,
        '      ipvs_lb_address: 198.51.100.11',
        '    lb2:',
        '      ipvs_lb_address: 198.51.100.12',
        '',
      ].join('\n'),
    );
    const built = await sh(join(ansibleDir, 'build-release.sh'), [join(tmp, 'rel')], { cwd: root, env: { ...process.env, HOME: env.HOME } });
    assert.equal(built.code, 0, built.out);
    tarball = built.out.trim().split('\n').pop() ?? '';
    assert.ok(existsSync(tarball), `build-release.sh printed ${tarball}`);
  });

  after(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('passes ansible-playbook --syntax-check with the example inventory', async () => {
    const r = await sh('ansible-playbook', ['--syntax-check', 'site.yml', '-i', 'inventory/example.yml'], { cwd: ansibleDir, env });
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /playbook: site\.yml/);
  });

  it('is clean under ansible-lint with the production profile, offline', async () => {
    const r = await sh('ansible-lint', [], { cwd: ansibleDir, env });
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /Passed with production profile: 0 failure\(s\), 0 warning\(s\)/);
  });

  it('documents firewall rules that nft accepts', async () => {
    const doc = readFileSync(join(root, 'docs', 'operations.md'), 'utf8');
    const m = /```nft\n([\s\S]*?)```/.exec(doc);
    assert.ok(m?.[1], 'no ```nft block in docs/operations.md');
    const file = join(tmp, 'firewall.nft');
    writeFileSync(file, m[1]);
    // -c checks the ruleset against the kernel without applying it.
    const r = await sh('nft', ['-c', '-f', file]);
    assert.equal(r.code, 0, r.out);
    assert.match(m[1], /ip protocol 112 /);
    assert.match(m[1], /udp dport 8848 /);
  });

  it('keeps one systemd unit and one user definition: the role links to the project files', () => {
    const files = join(ansibleDir, 'roles', 'ipvs_lb', 'files');
    assert.equal(realpathSync(join(files, 'ipvs-lb.service')), realpathSync(projectUnit));
    assert.equal(realpathSync(join(files, 'ipvs-lb.sysusers.conf')), realpathSync(join(root, 'systemd', 'ipvs-lb.sysusers.conf')));
  });

  describe('a real run into a throwaway root', () => {
    let first: Result;

    before(async () => {
      first = await play(vars());
    });

    it('succeeds and changes the host', () => {
      const r = recap(first.out);
      assert.equal(r.failed, 0, first.out.slice(-3000));
      assert.ok((r.changed ?? 0) > 0, first.out.slice(-3000));
    });

    it('renders a config.yaml that the project validates, with per-host VRRP priorities and peers', async () => {
      const path = join(lbRoot, 'etc', 'ipvs-lb', 'config.yaml');
      const v = await sh(process.execPath, [join(root, 'bin', 'ipvs-lb.js'), 'validate', '--config', path]);
      assert.equal(v.code, 0, v.out);
      assert.match(v.out, /valid/);
      const config = parse(readFileSync(path, 'utf8')) as {
        hostName: string;
        interface: string;
        kubernetes: { kubeconfig: string };
        pools: { name: string }[];
        vrrp: { groups: { name: string; priority: number; peers?: string[]; unicastSourceIp?: string }[] };
        api: { listen: string; tokenFile: string };
      };
      assert.equal(config.hostName, 'lb1');
      assert.equal(config.interface, 'eth0');
      assert.equal(config.kubernetes.kubeconfig, '/etc/ipvs-lb/kubeconfig');
      assert.deepEqual(config.pools.map((p) => p.name), ['default', 'second']);
      const [a, b] = config.vrrp.groups;
      // Group a names no peers: the other host of the inventory group, from this host's own address.
      assert.deepEqual(a, { name: 'a', priority: 150, virtualRouterId: 51, peers: ['198.51.100.12'], unicastSourceIp: '198.51.100.11' });
      assert.deepEqual(b, { name: 'b', priority: 100, virtualRouterId: 52, peers: ['198.51.100.99'] });
      assert.deepEqual(config.api, { listen: '127.0.0.1:9742', tokenFile: '/etc/ipvs-lb/api-token' });
    });

    it('installs the project unit unchanged, and systemd-analyze verify accepts it', async () => {
      const unit = join(lbRoot, 'etc', 'systemd', 'system', 'ipvs-lb.service');
      assert.equal(readFileSync(unit, 'utf8'), readFileSync(projectUnit, 'utf8'));
      const v = await sh('systemd-analyze', ['verify', unit]);
      assert.equal(v.code, 0, v.out);
      assert.equal(v.out.trim(), '');
      const wants = join(lbRoot, 'etc', 'systemd', 'system', 'multi-user.target.wants', 'ipvs-lb.service');
      assert.match(readlinkSync(wants), /\/etc\/systemd\/system\/ipvs-lb\.service$/);
      assert.equal(
        readFileSync(join(lbRoot, 'etc', 'sysusers.d', 'ipvs-lb.conf'), 'utf8'),
        readFileSync(join(root, 'systemd', 'ipvs-lb.sysusers.conf'), 'utf8'),
      );
    });

    it('loads the IPVS modules at boot and sets the DR sysctls (no NAT conntrack)', () => {
      const lines = (p: string) =>
        readFileSync(p, 'utf8').split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
      assert.deepEqual(lines(join(lbRoot, 'etc', 'modules-load.d', 'ipvs-lb.conf')), ['ip_vs', 'ip_vs_mh', 'ip_vs_wlc', 'ip_vs_rr', 'ipip', 'nf_conntrack']);
      assert.deepEqual(lines(join(lbRoot, 'etc', 'sysctl.d', '90-ipvs-lb.conf')), [
        'net.ipv4.vs.expire_nodest_conn = 1',
        'net.ipv4.vs.expire_quiescent_template = 1',
        'net.ipv4.conf.all.arp_ignore = 1',
        'net.ipv4.conf.all.arp_announce = 2',
        'net.ipv4.conf.all.accept_local = 1',
      ]);
    });

    it('creates the ipvs-lb system user and group from the project sysusers.d entry', () => {
      const passwd = readFileSync(join(lbRoot, 'etc', 'passwd'), 'utf8');
      assert.match(passwd, /^ipvs-lb:x:(\d+):\1:ipvs-lb load balancer:\/var\/lib\/ipvs-lb:\/usr\/sbin\/nologin$/m);
      assert.match(readFileSync(join(lbRoot, 'etc', 'group'), 'utf8'), /^ipvs-lb:x:\d+:$/m);
    });

    it('writes the secrets readable by owner and group only', () => {
      for (const [name, content] of [
        ['kubeconfig', 'apiVersion: v1\nkind: Config\nclusters: []\n'],
        ['api-token', 'test-token-0123456789\n'],
      ] as const) {
        const p = join(lbRoot, 'etc', 'ipvs-lb', name);
        assert.equal(statSync(p).mode & 0o777, 0o640, name);
        assert.equal(readFileSync(p, 'utf8'), content);
      }
      assert.equal(statSync(join(lbRoot, 'etc', 'ipvs-lb', 'config.yaml')).mode & 0o777, 0o640);
    });

    it('points /opt/ipvs-lb at the unpacked release, which runs on this host', async () => {
      assert.equal(readlinkSync(join(lbRoot, 'opt', 'ipvs-lb')), 'ipvs-lb-0.1.0');
      const v = await sh(process.execPath, [join(lbRoot, 'opt', 'ipvs-lb', 'bin', 'ipvs-lb.js'), '--version']);
      assert.equal(v.code, 0, v.out);
      assert.equal(v.out.trim(), '0.1.0');
      assert.ok(!existsSync(join(lbRoot, 'opt', '.ipvs-lb-0.1.0.unpacking')));
    });

    it('changes nothing on a second run', async () => {
      const r = await play(vars());
      assert.deepEqual({ changed: recap(r.out).changed, failed: recap(r.out).failed }, { changed: 0, failed: 0 }, r.out.slice(-3000));
    });

    it('switches to a new release keeping the old one for rollback, and rolls back', async () => {
      const opt = join(lbRoot, 'opt');
      // A release two versions old that the switch must prune.
      mkdirSync(join(opt, 'ipvs-lb-0.0.9'));
      const unpacked = statSync(join(opt, 'ipvs-lb-0.1.0')).ino;
      const next = await releaseAs('0.1.1');
      const up = await play(vars({ ipvs_lb_release_tarball: next }));
      assert.equal(recap(up.out).failed, 0, up.out.slice(-3000));
      assert.equal(readlinkSync(join(opt, 'ipvs-lb')), 'ipvs-lb-0.1.1');
      assert.equal(readlinkSync(join(opt, 'ipvs-lb.previous')), 'ipvs-lb-0.1.0');
      assert.ok(existsSync(join(opt, 'ipvs-lb-0.1.0', 'bin', 'ipvs-lb.js')));
      assert.ok(!existsSync(join(opt, 'ipvs-lb-0.0.9')));

      // Rolling back is the same playbook with the old tarball: the release is still there, only the link flips.
      const back = await play(vars());
      assert.equal(recap(back.out).failed, 0, back.out.slice(-3000));
      assert.equal(statSync(join(opt, 'ipvs-lb-0.1.0')).ino, unpacked, 'the kept release was unpacked again');
      assert.equal(readlinkSync(join(opt, 'ipvs-lb')), 'ipvs-lb-0.1.0');
      assert.equal(readlinkSync(join(opt, 'ipvs-lb.previous')), 'ipvs-lb-0.1.1');
    });

    it('refuses a misspelt variable by name before touching the host', async () => {
      const before = readFileSync(join(lbRoot, 'etc', 'ipvs-lb', 'config.yaml'), 'utf8');
      const r = await play({ ...vars(), ipvs_lb_pool: [] });
      assert.notEqual(r.code, 0);
      assert.match(r.out, /unknown variable ipvs_lb_pool;/);
      assert.equal(recap(r.out).changed, 0);
      assert.equal(readFileSync(join(lbRoot, 'etc', 'ipvs-lb', 'config.yaml'), 'utf8'), before);
    });

    it('names every wrong variable and its value, without echoing secrets', async () => {
      const r = await play(
        vars({
          ipvs_lb_forwarding: 'direct',
          ipvs_lb_vrrp_priority: { a: 150 },
          ipvs_lb_kubeconfig: 'token: EXAMPLE-DUMMY-secret-value',
          ipvs_lb_release_tarball: join(tmp, 'missing.tgz'),
        }),
      );
      assert.notEqual(r.code, 0);
      assert.match(r.out, /ipvs_lb_forwarding must be dr, tun or nat \(got \\?"direct\\?"\)/);
      assert.match(r.out, /ipvs_lb_vrrp_priority must give a priority to every group that has none of its own \(b\)/);
      assert.match(r.out, /ipvs_lb_kubeconfig is still the dummy of inventory\/group_vars\/ipvs_lb\/vault\.yml/);
      assert.match(r.out, /ipvs_lb_release_tarball must name a release tarball/);
      assert.doesNotMatch(r.out, /secret-value/);
      assert.equal(recap(r.out).changed, 0);
    });

    it('refuses a release built for another Node ABI before unpacking it', async () => {
      const other = await releaseAs('0.1.2', { node: 'v99.0.0', nodeAbi: '999' });
      const r = await play(vars({ ipvs_lb_release_tarball: other }));
      assert.notEqual(r.code, 0);
      assert.match(r.out, new RegExp(`was built with Node v99\\.0\\.0 \\(ABI 999\\) but /usr/bin/node here is ${process.version.replaceAll('.', '\\.')}`));
      assert.match(r.out, new RegExp(`\\(ABI ${process.versions.modules}\\); better-sqlite3 is a native module`));
      assert.equal(recap(r.out).changed, 0);
      assert.ok(!existsSync(join(lbRoot, 'opt', 'ipvs-lb-0.1.2')));
      assert.equal(readlinkSync(join(lbRoot, 'opt', 'ipvs-lb')), 'ipvs-lb-0.1.0');
    });

    it('leaves the running config alone when the project rejects the new one', async () => {
      const path = join(lbRoot, 'etc', 'ipvs-lb', 'config.yaml');
      const before = readFileSync(path, 'utf8');
      const r = await play(vars({ ipvs_lb_pools: [{ name: 'default', addresses: ['192.0.2.0/33'] }] }));
      assert.notEqual(r.code, 0);
      // The project's own validator, run by the template task, names the field and the value.
      assert.match(r.out, /pools\[0\]\.addresses\[0\]: is not a valid CIDR[^\n]*192\.0\.2\.0\/33/);
      assert.equal(readFileSync(path, 'utf8'), before);
      assert.equal(readlinkSync(join(lbRoot, 'opt', 'ipvs-lb')), 'ipvs-lb-0.1.0');
    });
  });

  it('site.yml rolls the example inventory out one host at a time and stops at the first that is not ready', async () => {
    // Stands in for the daemon's /readyz: ready for the first host, never for the second.
    const checks: boolean[] = [];
    const siteRoot = (h: string) => join(tmp, 'site', h);
    const config = (h: string) => join(siteRoot(h), 'etc', 'ipvs-lb', 'config.yaml');
    const server = createServer((req, res) => {
      checks.push(existsSync(config('lb2')));
      res.statusCode = req.url === '/readyz' && checks.length === 1 ? 200 : 503;
      res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as AddressInfo).port;
      // The example inventory with its group_vars and host_vars, plus a third host, all reached locally and
      // each writing into a root of its own.
      const inv = join(tmp, 'site-inventory');
      cpSync(join(ansibleDir, 'inventory'), inv, { recursive: true });
      const hosts = ['lb1', 'lb2', 'lb3'].flatMap((h) => [
        `    ${h}:`,
        '      ansible_connection: local',
        '      ansible_python_interpreter: /usr/bin/python3',
        `      ipvs_lb_root: ${siteRoot(h)}`,
        ...(h === 'lb3' ? ['      ipvs_lb_address: 198.51.100.13', '      ipvs_lb_vrrp_priority: {a: 50, b: 50}'] : []),
      ]);
      writeFileSync(join(inv, 'example.yml'), ['ipvs_lb:', '  hosts:', ...hosts, ''].join('\n'));
      const file = join(tmp, 'site-vars.json');
      writeFileSync(
        file,
        JSON.stringify({
          ipvs_lb_release_tarball: tarball,
          ipvs_lb_manage_packages: false,
          ipvs_lb_manage_users: false,
          ipvs_lb_manage_services: false,
          ipvs_lb_group: 'root',
          // What an operator's encrypted vault.yml would hold instead of the example's dummies.
          vault_ipvs_lb_kubeconfig: 'apiVersion: v1\nkind: Config\n',
          vault_ipvs_lb_api_token: 'site-token-0123456789',
          ipvs_lb_api_listen: `127.0.0.1:${port}`,
          ipvs_lb_wait_ready: true,
          ipvs_lb_ready_retries: 2,
          ipvs_lb_ready_delay: 1,
          // Root already; there is no sudo to become with.
          ansible_become: false,
        }),
      );
      const r = await sh('ansible-playbook', ['-i', join(inv, 'example.yml'), 'site.yml', '-e', `@${file}`], { cwd: ansibleDir, env });
      assert.notEqual(r.code, 0, r.out.slice(-3000));
      assert.equal(recap(r.out, 'lb1').failed, 0, r.out.slice(-3000));
      assert.equal(recap(r.out, 'lb2').failed, 1, r.out.slice(-3000));
      assert.ok(!existsSync(siteRoot('lb3')), 'the rollout went on after a host that never became ready');
      // lb1 was ready before lb2 was touched; lb2 was polled until the retries ran out.
      assert.deepEqual(checks, [false, true, true, true]);

      // The example's active-active priorities alternate, and each host advertises to the others.
      const groups = async (h: string) => {
        const v = await sh(process.execPath, [join(root, 'bin', 'ipvs-lb.js'), 'validate', '--config', config(h)]);
        assert.equal(v.code, 0, v.out);
        const c = parse(readFileSync(config(h), 'utf8')) as { vrrp: { groups: { name: string; priority: number; peers: string[] }[] } };
        return c.vrrp.groups.map((g) => [g.name, g.priority, g.peers.join(' ')]);
      };
      assert.deepEqual(await groups('lb1'), [
        ['a', 150, '198.51.100.12 198.51.100.13'],
        ['b', 100, '198.51.100.12 198.51.100.13'],
      ]);
      assert.deepEqual(await groups('lb2'), [
        ['a', 100, '198.51.100.11 198.51.100.13'],
        ['b', 150, '198.51.100.11 198.51.100.13'],
      ]);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
