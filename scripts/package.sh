#!/bin/bash
# Builds the Debian package: configures build-pkg/ (or the folder given as
# $1, with further CMake options after it) for the /usr prefix without tests,
# builds it and runs cpack -G DEB. Prints the path of the .deb on its last
# line. For arm64 (after scripts/cross-arm64.sh has installed the packages):
#   scripts/package.sh build-pkg-arm64 -DCMAKE_TOOLCHAIN_FILE=$PWD/cmake/toolchain-arm64.cmake
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
dir=${1:-build-pkg}
shift || true

# /usr: the profile folder compiled into citygate and the paths in the unit
# must be those the package installs to.
cmake -S "$src" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
	-DBUILD_TESTING=OFF "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"
(cd "$dir" && rm -f ./*.deb && cpack -G DEB >/dev/null)
deb=$(ls "$dir"/citygate_*.deb)
echo "$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")"
