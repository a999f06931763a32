#!/bin/bash
# Builds the release tarball the ansible role installs: the files `npm pack` ships (package.json "files")
# plus the production node_modules, plus package/release.json naming the Node ABI it was built with.
#
# better-sqlite3 and netlink are native modules compiled for one Node ABI, so run this on a machine with the
# LB hosts' OS and Node major (a Debian 12 build host or container with the same Node 20), after
# `npm ci && npm run build` in the checkout. The role refuses a release whose ABI differs from the host's.
#
# Usage: ansible/build-release.sh [OUTPUT_DIR]   (default: the current directory); prints the tarball's path.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$(mkdir -p "${1:-.}" && cd "${1:-.}" && pwd)

if [[ ! -f $root/dist/src/cli/main.js ]]; then
  echo "build-release: $root/dist/src is missing; run \`npm ci && npm run build\` first" >&2
  exit 1
fi
if [[ ! -d $root/node_modules/better-sqlite3 ]]; then
  echo "build-release: $root/node_modules is missing; run \`npm ci\` first" >&2
  exit 1
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

# npm pack applies the package's "files" list, so the release holds exactly what a published package would.
(cd "$root" && npm pack --silent --pack-destination "$stage" >/dev/null)
tar -xzf "$stage"/*.tgz -C "$stage"
rm -f "$stage"/*.tgz

# The checkout's node_modules already holds native modules built for this Node; pruning the development
# packages needs no network and no compiler, unlike a fresh `npm ci --omit=dev`.
cp "$root/package-lock.json" "$stage/package/"
cp -a "$root/node_modules" "$stage/package/"
(cd "$stage/package" && npm prune --omit=dev --offline --no-audit --no-fund --silent >/dev/null)

commit=$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [[ $commit != unknown ]] && [[ -n $(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
  commit="$commit-dirty"
fi
node -e '
  const [dir, commit] = process.argv.slice(1);
  const pkg = require(dir + "/package.json");
  const release = { name: pkg.name, version: pkg.version, commit, node: process.version,
    nodeAbi: process.versions.modules, platform: process.platform, arch: process.arch };
  require("fs").writeFileSync(dir + "/release.json", JSON.stringify(release, null, 2) + "\n");
' "$stage/package" "$commit"

read -r version abi arch < <(node -p 'const r = require(process.argv[1]); `${r.version} ${r.nodeAbi} ${r.arch}`' "$stage/package/release.json")
tarball="$out/ipvs-lb-$version-node$abi-linux-$arch.tgz"
tar --owner=0 --group=0 --numeric-owner -czf "$tarball.tmp" -C "$stage" package
mv "$tarball.tmp" "$tarball"
echo "$tarball"
