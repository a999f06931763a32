#!/usr/bin/env node
// Brings a fresh clone to a state where the tests, the demo and the CLI run: Debian packages, npm packages,
// Debian's kubectl (unpacked into .cache, because another kubectl may own /usr/bin/kubectl), and the build.
// Idempotent and quick when everything is already there. Plain JS with no dependencies: it runs before
// node_modules exists.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cache = join(root, '.cache');
const quiet = process.argv.includes('--quiet');
const say = (msg) => { if (!quiet) process.stdout.write(`setup: ${msg}\n`); };

// Every Debian package a test, the lab or the demo uses. The lab guest runs the host's binaries, so the
// kernel-side tools (ipvsadm, keepalived, arping, curl, socat) are needed here even though the host kernel
// has no IPVS.
const debianPackages = [
  'iproute2', 'openssl', 'curl', 'socat', 'procps', 'psmisc', 'kmod',
  'user-mode-linux', 'busybox-static', 'ipvsadm', 'keepalived', 'iputils-arping',
  'qemu-system-x86', 'linux-image-amd64', 'cpio', 'xz-utils',
  'systemd', 'ansible-core', 'ansible-lint', 'nftables', 'iptables',
];

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: quiet ? ['ignore', 'ignore', 'inherit'] : 'inherit', ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed with exit code ${r.status ?? r.signal}`);
}

function missingDebianPackages(names) {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Package} ${db:Status-Status}\n', ...names], { encoding: 'utf8' });
  const installed = new Set(
    r.stdout.split('\n').filter((l) => l.endsWith(' installed')).map((l) => l.split(' ')[0]),
  );
  return names.filter((n) => !installed.has(n));
}

let aptUpdated = false;
function aptUpdate() {
  if (aptUpdated) return;
  run('apt-get', ['update', '-qq']);
  aptUpdated = true;
}

function ensureDebianPackages() {
  const missing = missingDebianPackages(debianPackages);
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    throw new Error(`missing Debian packages ${missing.join(' ')}; run as root or install them with apt-get`);
  }
  say(`installing Debian packages: ${missing.join(' ')}`);
  aptUpdate();
  run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], {
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
}

// Debian's kubernetes-client is the kubectl the API simulator is checked against. It is unpacked into
// .cache instead of installed, so it neither fights nor replaces a kubectl the machine already has.
function ensureDebianKubectl() {
  const dir = join(cache, 'kubernetes-client');
  const kubectl = join(dir, 'usr', 'bin', 'kubectl');
  if (existsSync(kubectl)) return;
  say('unpacking Debian kubernetes-client into .cache/kubernetes-client');
  const dl = join(cache, 'deb');
  rmSync(dl, { recursive: true, force: true });
  mkdirSync(dl, { recursive: true });
  try {
    run('apt-get', ['download', '-qq', 'kubernetes-client'], { cwd: dl });
  } catch {
    aptUpdate();
    run('apt-get', ['download', '-qq', 'kubernetes-client'], { cwd: dl });
  }
  const deb = readdirSync(dl).find((f) => f.startsWith('kubernetes-client_') && f.endsWith('.deb'));
  if (!deb) throw new Error('apt-get download kubernetes-client produced no .deb');
  rmSync(dir, { recursive: true, force: true });
  run('dpkg-deb', ['-x', join(dl, deb), dir]);
  rmSync(dl, { recursive: true, force: true });
}

function sha256(file) {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

function ensureNpmPackages() {
  const stamp = join(root, 'node_modules', '.ipvs-lb-lock.sha256');
  const want = sha256(join(root, 'package-lock.json'));
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === want) return;
  say('installing npm packages (npm ci; better-sqlite3 builds from source, about 90 s)');
  run('npm', ['ci', '--no-fund', '--no-audit'], { cwd: root });
  writeFileSync(stamp, want);
}

function build() {
  say('building (tsc)');
  run(join(root, 'node_modules', '.bin', 'tsc'), ['-p', join(root, 'tsconfig.json')], { cwd: root });
}

try {
  mkdirSync(cache, { recursive: true });
  ensureDebianPackages();
  ensureDebianKubectl();
  ensureNpmPackages();
  if (!process.argv.includes('--no-build')) build();
} catch (err) {
  process.stderr.write(`setup: ${err.message}\n`);
  process.exit(1);
}
// Quietly confirm that the pieces the lab needs are where the lab expects them.
try {
  execFileSync('test', ['-x', '/usr/bin/linux.uml']);
} catch {
  process.stderr.write('setup: /usr/bin/linux.uml is missing after installing user-mode-linux\n');
  process.exit(1);
}
