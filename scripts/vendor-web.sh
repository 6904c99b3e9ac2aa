#!/usr/bin/env bash
# Vendors the one library the sign-in page uses, amazon-cognito-identity-js (Cognito's SRP
# password proof), from the npm registry at a pinned version, checked against the pinned sha512
# integrity (and against what the registry announces, when npm is there), into web/vendor/.
# The vendored file is committed: the page needs no build step and no network. Run it again
# only to change the version (update VERSION and INTEGRITY together).
set -euo pipefail

NAME=amazon-cognito-identity-js
VERSION=6.3.21
INTEGRITY='sha512-2a0gDHWPZlzFGY5ZG/h7w4+81ouTVVjIiBRKkMOjJlaomItG9LGqyp1RXHrL/1OKElmepWyJGW0/mUTmsL22ig=='
BUILT=package/dist/amazon-cognito-identity.min.js

root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/web/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if ! command -v npm >/dev/null; then
    echo "vendor-web: needs npm (Debian: apt-get install npm)" >&2
    exit 1
fi
announced="$(npm view "$NAME@$VERSION" dist.integrity)"
if [[ "$announced" != "$INTEGRITY" ]]; then
    echo "vendor-web: the registry announces $announced for $NAME@$VERSION, pinned $INTEGRITY" >&2
    exit 1
fi
(cd "$work" && npm pack --silent "$NAME@$VERSION" >/dev/null)
tarball="$work/$NAME-$VERSION.tgz"

actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
if [[ "$actual" != "$INTEGRITY" ]]; then
    echo "vendor-web: $NAME-$VERSION.tgz has integrity $actual, pinned $INTEGRITY" >&2
    exit 1
fi

tar -xzf "$tarball" -C "$work" "$BUILT" package/LICENSE.txt 2>/dev/null \
    || tar -xzf "$tarball" -C "$work" "$BUILT"
mkdir -p "$out"
cp "$work/$BUILT" "$out/amazon-cognito-identity.min.js"
[[ -f "$work/package/LICENSE.txt" ]] && cp "$work/package/LICENSE.txt" "$out/amazon-cognito-identity.LICENSE.txt"
file_sha256="$(sha256sum "$out/amazon-cognito-identity.min.js" | cut -d' ' -f1)"
cat > "$out/README.md" <<NOTE
# web/vendor

\`amazon-cognito-identity.min.js\` is \`$BUILT\` of the npm package
\`$NAME@$VERSION\` (Apache-2.0), tarball integrity \`$INTEGRITY\`,
file sha256 \`$file_sha256\`. Written by \`scripts/vendor-web.sh\`, which checks the tarball
against the pinned integrity; the page uses it for Cognito's SRP password proof only.
NOTE
echo "vendored $NAME@$VERSION into web/vendor/ (sha256 $file_sha256)"
