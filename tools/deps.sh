#!/bin/sh
# Installs the missing Debian packages of the given groups (see packages.txt).
# Usage: tools/deps.sh build run test
set -eu
here=$(cd "$(dirname "$0")" && pwd)
missing=""
for group in "$@"; do
    for pkg in $(awk -v g="$group" '$1 == g { print $2 }' "$here/packages.txt"); do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed"; then
            missing="$missing $pkg"
        fi
    done
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo=sudo
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
