# Detects the CUDA toolkit, cuDNN and NCCL for the CUDA backend. SCPN_CUDA=AUTO turns the backend on
# when nvcc is found; ON makes a missing toolkit an error; OFF skips detection. Sets SCPN_WITH_CUDA and
# the summary strings printed at the end of configuration. cuDNN and NCCL are searched first in any
# CUDNN_ROOT / NCCL_ROOT given (e.g. a PyTorch wheel's site-packages/nvidia/cudnn, whose libraries carry
# only versioned names such as libcudnn.so.9), then in the toolkit and the usual system folders; headers
# last in third_party/include/cuda-libs/ (copied there by third_party/copy_system_headers.sh for a machine
# that has the libraries but not the headers). SCPN_WITH_CUDA is always a plain ON/OFF: the reason a
# backend is off goes into the summary strings.
set(SCPN_WITH_CUDA OFF)
set(SCPN_HAVE_NCCL OFF)
set(SCPN_CUDA_SUMMARY "not searched (SCPN_CUDA=OFF)")
set(SCPN_CUDNN_SUMMARY "not searched")
set(SCPN_NCCL_SUMMARY "not searched")

if(NOT SCPN_CUDA STREQUAL "OFF")
  find_package(CUDAToolkit QUIET)
  if(CUDAToolkit_FOUND)
    set(SCPN_CUDA_SUMMARY "${CUDAToolkit_VERSION} at ${CUDAToolkit_BIN_DIR}")
    set(_carried ${CMAKE_CURRENT_SOURCE_DIR}/third_party/include/cuda-libs)
    set(_hints ${CUDNN_ROOT} $ENV{CUDNN_ROOT} ${CUDAToolkit_LIBRARY_ROOT} ${CUDAToolkit_TARGET_DIR})
    find_path(SCPN_CUDNN_INCLUDE cudnn.h HINTS ${_hints} PATH_SUFFIXES include
              PATHS ${CUDAToolkit_INCLUDE_DIRS} /usr/include /usr/local/include ${_carried}/cudnn/include)
    # NAMES_PER_DIR: a folder named by CUDNN_ROOT wins even when it holds only libcudnn.so.9.
    find_library(SCPN_CUDNN_LIBRARY NAMES cudnn libcudnn.so.9 NAMES_PER_DIR HINTS ${_hints}
                 PATH_SUFFIXES lib lib64 PATHS ${CUDAToolkit_LIBRARY_DIR} /usr/lib/x86_64-linux-gnu)
    set(_nccl_hints ${NCCL_ROOT} $ENV{NCCL_ROOT} ${CUDAToolkit_LIBRARY_ROOT})
    find_path(SCPN_NCCL_INCLUDE nccl.h HINTS ${_nccl_hints} PATH_SUFFIXES include
              PATHS ${CUDAToolkit_INCLUDE_DIRS} /usr/include /usr/local/include ${_carried}/nccl/include)
    find_library(SCPN_NCCL_LIBRARY NAMES nccl libnccl.so.2 NAMES_PER_DIR HINTS ${_nccl_hints}
                 PATH_SUFFIXES lib lib64 PATHS ${CUDAToolkit_LIBRARY_DIR} /usr/lib/x86_64-linux-gnu)
    if(SCPN_CUDNN_INCLUDE AND SCPN_CUDNN_LIBRARY)
      set(SCPN_CUDNN_SUMMARY "${SCPN_CUDNN_LIBRARY} (headers ${SCPN_CUDNN_INCLUDE})")
    else()
      set(SCPN_CUDNN_SUMMARY "NOT FOUND (set CUDNN_ROOT); CUDA backend off")
    endif()
    if(SCPN_NCCL_INCLUDE AND SCPN_NCCL_LIBRARY)
      set(SCPN_NCCL_SUMMARY "${SCPN_NCCL_LIBRARY} (headers ${SCPN_NCCL_INCLUDE})")
    else()
      set(SCPN_NCCL_SUMMARY "NOT FOUND (set NCCL_ROOT)")
    endif()
    if(SCPN_CUDNN_INCLUDE AND SCPN_CUDNN_LIBRARY)
      set(SCPN_WITH_CUDA ON)
      set(SCPN_HAVE_NCCL OFF)
      if(SCPN_NCCL_INCLUDE AND SCPN_NCCL_LIBRARY)
        set(SCPN_HAVE_NCCL ON)
      endif()
    elseif(SCPN_CUDA STREQUAL "ON")
      message(FATAL_ERROR "SCPN_CUDA=ON but cuDNN was not found; set CUDNN_ROOT to the folder holding "
                          "include/cudnn.h and lib/libcudnn.so*")
    endif()  # else: SCPN_WITH_CUDA stays OFF and the cuDNN summary says why
  elseif(SCPN_CUDA STREQUAL "ON")
    message(FATAL_ERROR "SCPN_CUDA=ON but the CUDA toolkit (nvcc) was not found; "
                        "put nvcc on PATH or set CUDAToolkit_ROOT")
  else()
    set(SCPN_CUDA_SUMMARY "not found (nvcc not on PATH)")
  endif()
endif()
