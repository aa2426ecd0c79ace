#!/usr/bin/env bash
# Build the agent's packages into target/packages/ (docs/install.md):
#   outpost-agent_VERSION-1_ARCH.deb   with cargo-deb
#   outpost-agent-VERSION-1.ARCH.rpm   with cargo-generate-rpm
# both from agent/Cargo.toml's [package.metadata.deb] and [package.metadata.generate-rpm]
# (assets and maintainer scripts under packaging/, the unit in systemd/) and from one build of
# the `dist` profile ([profile.dist] in Cargo.toml: what bench/e2e.sh measures); the version is
# the workspace's. The two tools are installed with `cargo install --locked`, at the versions
# pinned below, into cargo's bin directory when missing (cargo-generate-rpm takes ~3 minutes to
# build). scripts/test-packages.sh checks the result.
#
#   scripts/package.sh [--no-build]    --no-build: package the dist binary already built
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

cargo_deb_version=3.8.0
cargo_generate_rpm_version=0.21.1

build=1
case ${1:-} in
  "") ;;
  --no-build) build=0 ;;
  *) echo "usage: scripts/package.sh [--no-build]" >&2; exit 2 ;;
esac

# tool SUBCOMMAND CRATE VERSION: install CRATE at VERSION unless `cargo SUBCOMMAND` is it.
tool() {
  local have
  have=$(cargo "$1" --version 2>/dev/null | awk '{print $2}' || true)
  if [ "$have" != "$3" ]; then
    echo "== cargo install --locked $2 --version $3${have:+ (found $have)}"
    cargo install --locked --quiet "$2" --version "$3"
  fi
}
tool deb cargo-deb "$cargo_deb_version"
tool generate-rpm cargo-generate-rpm "$cargo_generate_rpm_version"

target_dir=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
out=$target_dir/packages
mkdir -p "$out"
rm -f "$out"/outpost-agent*.deb "$out"/outpost-agent*.rpm

if ((build)); then
  echo "== cargo build --profile dist -p outpost-agent"
  cargo build --profile dist --locked -p outpost-agent
fi
[ -x "$target_dir/dist/outpost-agent" ] ||
  { echo "package.sh: no $target_dir/dist/outpost-agent (run without --no-build)" >&2; exit 1; }

# File dates and the build date from the last commit: the same tree gives the same packages.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH

echo "== cargo deb (dist profile, symbols kept)"
# --no-strip: the packaged binary is the one built, byte for byte, as in the rpm.
cargo deb --package outpost-agent --profile dist --no-build --no-strip --output "$out/"

echo "== cargo generate-rpm (dist profile)"
# From agent/, so that the metadata's relative paths name the same files as for cargo-deb.
(cd "$root/agent" && cargo generate-rpm --profile dist --target-dir "$target_dir" --output "$out/")

echo "== packages in $out"
ls -l "$out"/outpost-agent*.deb "$out"/outpost-agent*.rpm
