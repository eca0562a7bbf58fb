# Cross-compiles for 64-bit ARM with Debian's cross compiler (g++-aarch64-linux-gnu) and runs the
# tests under qemu-user (qemu-user): bash cmake/install-deps.sh --arm64 installs both.
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake
# The header-only dependencies (Eigen, Boost.Test's header-only variant, cxxopts) come from the
# host's /usr/include, which Debian's cross compiler searches last; libraries come from its own root.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)  # Eigen's and cxxopts' CMake files describe headers only
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /usr/aarch64-linux-gnu)
set(SAE_ENABLE_CUDA OFF CACHE BOOL "no CUDA for the ARM cross build")
set(SAE_NATIVE_ARCH OFF CACHE BOOL "the building machine is not the target")
set(CMAKE_CXX_FLAGS_INIT "-Wno-psabi")  # GCC notes an ABI change of GCC 10 for pair<double, double>; nothing here crosses that ABI
