# tapegrad as a package: what the target carries to its consumers, and the install rules that make
# find_package(tapegrad CONFIG REQUIRED) and pkg-config work after `cmake --install`.
#
# Headers include each other from the repository root ("autograd/tensor.h", "ops/softmax.h"). An
# installed consumer writes #include <tapegrad/tapegrad.h>, so the headers are installed as
#   <prefix>/include/tapegrad/tapegrad.h, <prefix>/include/tapegrad/autograd/tensor.h, ...
# and both <prefix>/include and <prefix>/include/tapegrad go on the consumer's include path.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# In the build tree (add_subdirectory / FetchContent) <tapegrad/tapegrad.h> works too, through a
# generated one-line header that includes the real one: consumer code is the same either way.
set(TAPEGRAD_FORWARD_DIR ${CMAKE_CURRENT_BINARY_DIR}/tapegrad_forward)
file(CONFIGURE OUTPUT ${TAPEGRAD_FORWARD_DIR}/tapegrad/tapegrad.h @ONLY
     CONTENT "// Generated: forwards to the source tree's umbrella header.\n#include \"@PROJECT_SOURCE_DIR@/tapegrad.h\"\n")

target_include_directories(tapegrad PUBLIC
  $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>
  $<BUILD_INTERFACE:${TAPEGRAD_FORWARD_DIR}>
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/tapegrad>)

# Usage requirements: what every consumer needs to compile and link against tapegrad's headers and
# library. C++17 as a compile feature (a flag only if the compiler's default is older); xtensor and
# nlohmann_json because public headers include them; xtensor-blas, BLAS and LAPACK for matmul;
# OpenMP because the kernels are parallel (-fopenmp also links its runtime). No tuning flags here.
target_compile_features(tapegrad PUBLIC cxx_std_17)
target_link_libraries(tapegrad PUBLIC xtensor xtensor-blas BLAS::BLAS LAPACK::LAPACK
                      OpenMP::OpenMP_CXX nlohmann_json::nlohmann_json)
target_compile_options(tapegrad PRIVATE ${TAPEGRAD_WARNINGS})
set_target_properties(tapegrad PROPERTIES VERSION ${PROJECT_VERSION} EXPORT_NAME tapegrad)

if(NOT TAPEGRAD_INSTALL)
  return()
endif()

set(TAPEGRAD_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/tapegrad)
install(TARGETS tapegrad EXPORT tapegrad-targets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${PROJECT_SOURCE_DIR}/tapegrad.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/tapegrad)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/autograd ${PROJECT_SOURCE_DIR}/ops ${PROJECT_SOURCE_DIR}/models
                  ${PROJECT_SOURCE_DIR}/optim
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/tapegrad FILES_MATCHING PATTERN "*.h")
install(EXPORT tapegrad-targets NAMESPACE tapegrad:: DESTINATION ${TAPEGRAD_CMAKE_DIR})

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/tapegrad-config.cmake.in
                              ${PROJECT_BINARY_DIR}/tapegrad-config.cmake
                              INSTALL_DESTINATION ${TAPEGRAD_CMAKE_DIR})
# 0.x: a minor version may change the API, so only the same major.minor is compatible.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/tapegrad-config-version.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/tapegrad-config.cmake
              ${PROJECT_BINARY_DIR}/tapegrad-config-version.cmake
        DESTINATION ${TAPEGRAD_CMAKE_DIR})

# pkg-config, for builds without CMake. Honest for gcc and clang (-fopenmp); tested by
# scripts/consumer_test.sh. xtensor-blas has no .pc file: it is header-only and lives beside
# xtensor, whose Cflags cover it.
# The prefix is found relative to the .pc file itself (${pcfiledir}), so `cmake --install --prefix`
# anywhere gives a working file.
file(RELATIVE_PATH TAPEGRAD_PC_TO_PREFIX /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
configure_file(${PROJECT_SOURCE_DIR}/cmake/tapegrad.pc.in ${PROJECT_BINARY_DIR}/tapegrad.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/tapegrad.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
