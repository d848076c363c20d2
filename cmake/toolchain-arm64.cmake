# Cross-compiles citygate for arm64 with Debian's cross gcc and the arm64 -dev
# packages installed through multiarch (dpkg --add-architecture arm64).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
# Multiarch keeps arm64 libraries, pkg-config files and CMake packages in the
# host tree under lib/aarch64-linux-gnu; this makes find_* look there.
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

# Search the cross toolchain's sysroot and the multiarch host tree for
# libraries, headers and packages, never for programs (those run here).
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu /)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# pkg-config must see the arm64 .pc files only, not the host's.
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
set(ENV{PKG_CONFIG_PATH} "")

# ctest (and try_run) run arm64 programs through qemu-user. The arm64 loader
# and libc come from multiarch (libc6:arm64, pulled in by the -dev packages),
# so no -L prefix: with -L /usr/aarch64-linux-gnu, qemu 7.2 spun for ever in
# test_modbus_driver's Modbus TCP test, which passes without it.
set(CMAKE_CROSSCOMPILING_EMULATOR /usr/bin/qemu-aarch64)
