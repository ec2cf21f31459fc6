# Shared by the ARM toolchain files: where target headers, libraries and CMake
# package files are found. Expects WEIR_TRIPLET.
if(DEFINED ENV{WEIR_SYSROOT} AND NOT "$ENV{WEIR_SYSROOT}" STREQUAL "")
  set(CMAKE_SYSROOT $ENV{WEIR_SYSROOT})
  set(CMAKE_FIND_ROOT_PATH $ENV{WEIR_SYSROOT})
  set(WEIR_QEMU_ROOT $ENV{WEIR_SYSROOT})
else()
  # Debian multiarch: target files live beside the host's under the triplet dirs.
  set(CMAKE_LIBRARY_ARCHITECTURE ${WEIR_TRIPLET})
  set(CMAKE_FIND_ROOT_PATH /usr/${WEIR_TRIPLET} /)
  set(WEIR_QEMU_ROOT /)
  set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/${WEIR_TRIPLET}/pkgconfig:/usr/share/pkgconfig)
endif()
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)   # flatc and friends run on the host
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
