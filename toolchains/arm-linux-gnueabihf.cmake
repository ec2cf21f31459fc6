# Cross build for 32-bit ARM gateways (Raspberry Pi OS 32-bit, armhf).
# Target libraries from Debian multiarch (:armhf) or a sysroot in WEIR_SYSROOT.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(WEIR_TRIPLET arm-linux-gnueabihf)
set(CMAKE_C_COMPILER ${WEIR_TRIPLET}-gcc)
set(CMAKE_CXX_COMPILER ${WEIR_TRIPLET}-g++)
include(${CMAKE_CURRENT_LIST_DIR}/common-cross.cmake)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-arm -L ${WEIR_QEMU_ROOT})
# GCC notes on every std::vector of 8-byte-aligned structs that their parameter
# passing changed in GCC 7.1; weir links only code built by this compiler.
set(CMAKE_CXX_FLAGS_INIT "-Wno-psabi")
