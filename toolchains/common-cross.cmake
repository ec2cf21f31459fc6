# Shared by the ARM toolchain files: where target headers, libraries and CMake
# package files are found. Expects WEIR_TRIPLET.
#
# WEIR_SYSROOT (a cache variable or the environment variable; empty means multiarch):
# a target root file system with the -dev packages in it (scripts/cross makes one at
# build/sysroot-<debarch> when multiarch is impossible). It is cached so that
# re-running cmake without the environment variable keeps using it.
if(NOT DEFINED WEIR_SYSROOT AND DEFINED ENV{WEIR_SYSROOT})
  set(WEIR_SYSROOT "$ENV{WEIR_SYSROOT}")
endif()
set(WEIR_SYSROOT "${WEIR_SYSROOT}" CACHE PATH "target sysroot; empty for Debian multiarch")
# try_compile projects see only the platform variables listed here.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES WEIR_SYSROOT)

if(NOT WEIR_SYSROOT STREQUAL "")
  set(CMAKE_SYSROOT ${WEIR_SYSROOT})
  set(CMAKE_FIND_ROOT_PATH ${WEIR_SYSROOT})
  set(CMAKE_LIBRARY_ARCHITECTURE ${WEIR_TRIPLET})
  set(WEIR_QEMU_ROOT ${WEIR_SYSROOT})
  set(ENV{PKG_CONFIG_SYSROOT_DIR} ${WEIR_SYSROOT})
  set(ENV{PKG_CONFIG_LIBDIR}
      ${WEIR_SYSROOT}/usr/lib/${WEIR_TRIPLET}/pkgconfig:${WEIR_SYSROOT}/usr/share/pkgconfig)
else()
  # Debian multiarch: target files live beside the host's under the triplet dirs.
  set(CMAKE_LIBRARY_ARCHITECTURE ${WEIR_TRIPLET})
  set(CMAKE_FIND_ROOT_PATH /usr/${WEIR_TRIPLET} /)
  set(WEIR_QEMU_ROOT /)
  set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/${WEIR_TRIPLET}/pkgconfig:/usr/share/pkgconfig)
  if(NOT EXISTS /usr/lib/${WEIR_TRIPLET}/cmake/simdjson)
    set(simdjson_DIR ${CMAKE_CURRENT_LIST_DIR}/compat/simdjson CACHE PATH "see compat/simdjson")
  endif()
endif()
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)   # flatc and friends run on the host
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
