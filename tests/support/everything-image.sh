#!/bin/sh
# Build the Docker image the gateway's container tests run: npm `@modelcontextprotocol/server-everything`
# (the version tests/peers/package.json pins) on this machine's own Node.js, speaking MCP over stdio.
#
#     tests/support/everything-image.sh [IMAGE]     (default: latchkey-test/everything:<version>)
#
# Prints the image's name.
# No registry is reached for the image: the root file system is assembled here (the node binary,
# the shared libraries `ldd` lists for it, and `npm install --omit=dev` of the server, from npm's
# cache when it has the package) and turned into an image with `docker import`. Does nothing when
# the image is already there. Talks to the Docker Engine that DOCKER_HOST names.
set -eu
cd "$(dirname "$0")/../.."

version=$(node -p 'require("./tests/peers/package.json").dependencies["@modelcontextprotocol/server-everything"]')
image="${1:-latchkey-test/everything:$version}"
if docker image inspect "$image" >/dev/null 2>&1; then
    echo "$image"
    exit 0
fi

rootfs=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-rootfs.XXXXXX")
trap 'rm -rf "$rootfs"' EXIT

# Node.js and what the dynamic loader needs to start it.
node=$(readlink -f "$(command -v node)")
mkdir -p "$rootfs/usr/bin" "$rootfs/tmp" "$rootfs/app"
cp "$node" "$rootfs/usr/bin/node"
ldd "$node" | awk '/=> \//{print $3} /^\t\//{print $1}' | while read -r library; do
    mkdir -p "$rootfs$(dirname "$library")"
    cp -L "$library" "$rootfs$library"
done
chmod 1777 "$rootfs/tmp"

npm install --prefix "$rootfs/app" --omit=dev --no-audit --no-fund --no-update-notifier --no-package-lock --prefer-offline --loglevel=error \
    "@modelcontextprotocol/server-everything@$version" >/dev/null

tar -C "$rootfs" -c . | docker import \
    --change 'ENTRYPOINT ["/usr/bin/node", "/app/node_modules/@modelcontextprotocol/server-everything/dist/index.js"]' \
    --change 'CMD ["stdio"]' \
    --change 'WORKDIR /app' \
    - "$image" >/dev/null
echo "$image"
