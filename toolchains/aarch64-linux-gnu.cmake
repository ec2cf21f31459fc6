# Cross build for 64-bit ARM gateways (Raspberry Pi 3/4/5 with a 64-bit OS).
# Target libraries come from Debian multiarch (`dpkg --add-architecture arm64`,
# then the :arm64 -dev packages; scripts/cross does this) or from a sysroot
# given as WEIR_SYSROOT.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(WEIR_TRIPLET aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${WEIR_TRIPLET}-gcc)
set(CMAKE_CXX_COMPILER ${WEIR_TRIPLET}-g++)
include(${CMAKE_CURRENT_LIST_DIR}/common-cross.cmake)
# ctest runs the cross-built tests on the host through qemu-user. -L must be /
# for multiarch: the target's loader and libraries live under /lib/aarch64-linux-gnu.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L ${WEIR_QEMU_ROOT})
