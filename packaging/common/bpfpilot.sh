#!/bin/sh
# bpfpilot launcher: runs the bundled program with Deno. The package's private Deno (Debian has
# no deno package) when there is one beside the bundle, else the system's (Arch: depends=deno).
# Paths are relative to this script, so an installed tree works from any root.
lib="$(dirname "$(readlink -f "$0")")/../lib/bpfpilot"
deno="$lib/deno"
if [ ! -x "$deno" ]; then
  deno="$(command -v deno)" || {
    echo "bpfpilot: Deno is not installed; install it (Arch/CachyOS: pacman -S deno)" >&2
    exit 1
  }
fi
DENO_NO_UPDATE_CHECK=1 exec "$deno" run -A --no-config --no-lock --quiet "$lib/bpfpilot.js" "$@"
