# Finds the third-party pieces the engine uses. Headers are looked up first in the system (Debian
# packages libstb-dev, nlohmann-json3-dev, doctest-dev), then in third_party/include, a git-ignored
# folder that third_party/copy_system_headers.sh fills for machines without apt (the GPU machine).
set(SCPN_EXTRA_INCLUDE ${CMAKE_CURRENT_SOURCE_DIR}/third_party/include)

find_path(SCPN_JSON_INCLUDE nlohmann/json.hpp HINTS ${SCPN_EXTRA_INCLUDE} PATHS /usr/include)
if(NOT SCPN_JSON_INCLUDE)
  message(FATAL_ERROR "nlohmann/json.hpp not found: apt-get install nlohmann-json3-dev, "
                      "or run third_party/copy_system_headers.sh on a machine that has it")
endif()
add_library(scpn_json INTERFACE)
target_include_directories(scpn_json SYSTEM INTERFACE ${SCPN_JSON_INCLUDE})
add_library(scpn::json ALIAS scpn_json)
set(SCPN_JSON_SUMMARY ${SCPN_JSON_INCLUDE})

find_path(SCPN_DOCTEST_INCLUDE doctest/doctest.h HINTS ${SCPN_EXTRA_INCLUDE} PATHS /usr/include)
if(SCPN_BUILD_TESTS AND NOT SCPN_DOCTEST_INCLUDE)
  message(FATAL_ERROR "doctest/doctest.h not found: apt-get install doctest-dev, "
                      "or run third_party/copy_system_headers.sh on a machine that has it")
endif()
add_library(scpn_doctest INTERFACE)
target_include_directories(scpn_doctest SYSTEM INTERFACE ${SCPN_DOCTEST_INCLUDE})
add_library(scpn::doctest ALIAS scpn_doctest)
set(SCPN_DOCTEST_SUMMARY "${SCPN_DOCTEST_INCLUDE}")

find_path(SCPN_STB_INCLUDE stb/stb_image.h HINTS ${SCPN_EXTRA_INCLUDE} PATHS /usr/include)
set(SCPN_STB_SUMMARY "${SCPN_STB_INCLUDE}")
if(SCPN_STB_INCLUDE)
  add_library(scpn_stb INTERFACE)
  target_include_directories(scpn_stb SYSTEM INTERFACE ${SCPN_STB_INCLUDE})
  add_library(scpn::stb ALIAS scpn_stb)
endif()

find_package(ZLIB QUIET)
if(ZLIB_FOUND)
  set(SCPN_ZLIB_SUMMARY "${ZLIB_LIBRARIES} (${ZLIB_VERSION_STRING})")
else()
  set(SCPN_ZLIB_SUMMARY "not found (apt-get install zlib1g-dev)")
endif()

find_package(OpenMP REQUIRED COMPONENTS CXX)

set(SCPN_HAVE_OPENBLAS OFF)
set(SCPN_OPENBLAS_SUMMARY "off (SCPN_OPENBLAS=OFF)")
if(SCPN_OPENBLAS)
  # Debian ships OpenBLAS built with OpenMP (libopenblas-openmp-dev) and with pthreads (libopenblas-dev);
  # the OpenMP build is preferred: its threads are the same libgomp pool as our kernels', whereas a
  # pthreads OpenBLAS and OpenMP spin against each other on every GEMM inside an OpenMP program (a 3x
  # slowdown of the training step measured here). Each lives in its own folder; the build links that file
  # and records the folder in the RPATH, since both use the soname libopenblas.so.0.
  find_path(SCPN_OPENBLAS_INCLUDE cblas.h NO_DEFAULT_PATH
            PATHS /usr/include/x86_64-linux-gnu/openblas-openmp /usr/include/x86_64-linux-gnu/openblas-pthread
                  /usr/include/openblas /usr/include)
  find_library(SCPN_OPENBLAS_LIBRARY NAMES openblas NO_DEFAULT_PATH
               PATHS /usr/lib/x86_64-linux-gnu/openblas-openmp /usr/lib/x86_64-linux-gnu/openblas-pthread
                     /usr/lib/x86_64-linux-gnu)
  if(SCPN_OPENBLAS_INCLUDE AND SCPN_OPENBLAS_LIBRARY)
    set(SCPN_HAVE_OPENBLAS ON)
    add_library(scpn_openblas INTERFACE)
    target_include_directories(scpn_openblas SYSTEM INTERFACE ${SCPN_OPENBLAS_INCLUDE})
    target_link_libraries(scpn_openblas INTERFACE ${SCPN_OPENBLAS_LIBRARY})
    add_library(scpn::openblas ALIAS scpn_openblas)
    set(SCPN_OPENBLAS_SUMMARY "${SCPN_OPENBLAS_LIBRARY}")
  else()
    set(SCPN_OPENBLAS_SUMMARY "not found (apt-get install libopenblas-openmp-dev); our own GEMM only")
  endif()
endif()
