# simdjson for a multiarch cross build. Debian's libsimdjson-dev is not
# Multi-Arch: same, so installing it for the target would remove the host's copy.
# scripts/cross installs only the target's runtime library (libsimdjson14:<arch>);
# the header is architecture-independent and comes from the host's -dev package.
# common-cross.cmake points simdjson_DIR here only when the target has no
# CMake package of its own.
include(CMakeFindDependencyMacro)
find_dependency(Threads)
find_path(WEIR_SIMDJSON_INCLUDE simdjson.h PATHS /usr/include NO_DEFAULT_PATH)
file(GLOB _weir_simdjson_libs /usr/lib/${WEIR_TRIPLET}/libsimdjson.so.*)
list(SORT _weir_simdjson_libs)
list(LENGTH _weir_simdjson_libs _weir_n)
if(NOT WEIR_SIMDJSON_INCLUDE OR _weir_n EQUAL 0)
  set(simdjson_FOUND FALSE)
  set(simdjson_NOT_FOUND_MESSAGE
      "need /usr/include/simdjson.h (host libsimdjson-dev) and /usr/lib/${WEIR_TRIPLET}/libsimdjson.so.N")
  return()
endif()
list(GET _weir_simdjson_libs 0 _weir_simdjson_so)  # libsimdjson.so.N sorts first
get_filename_component(_weir_soname ${_weir_simdjson_so} NAME)
if(NOT TARGET simdjson::simdjson)
  add_library(simdjson::simdjson SHARED IMPORTED)
  set_target_properties(simdjson::simdjson PROPERTIES
    IMPORTED_LOCATION ${_weir_simdjson_so}
    IMPORTED_SONAME ${_weir_soname}
    INTERFACE_COMPILE_DEFINITIONS SIMDJSON_THREADS_ENABLED=1
    INTERFACE_INCLUDE_DIRECTORIES ${WEIR_SIMDJSON_INCLUDE}
    INTERFACE_LINK_LIBRARIES Threads::Threads)
endif()
set(simdjson_FOUND TRUE)
