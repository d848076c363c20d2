# Read by cpack: refuses to package a build whose compiled-in paths (the
# profile folder, the unit's binary and config) do not match the package's.
if(NOT CPACK_CG_CONFIGURED_PREFIX STREQUAL CPACK_PACKAGING_INSTALL_PREFIX)
  message(FATAL_ERROR "citygate: this build was configured with CMAKE_INSTALL_PREFIX="
          "${CPACK_CG_CONFIGURED_PREFIX}, the package installs into "
          "${CPACK_PACKAGING_INSTALL_PREFIX}: configure with "
          "-DCMAKE_INSTALL_PREFIX=${CPACK_PACKAGING_INSTALL_PREFIX} (scripts/package.sh does)")
endif()
