# Finds LibTorch and defines the imported interface target `longnet::torch` that everything
# links. Also included by the installed package config, so consumers get the same target.
# The default pip wheel of torch is a CUDA build, whose TorchConfig.cmake insists on a CUDA
# toolkit; when our CUDA path is off we link its CPU libraries directly, so a CPU-only machine
# builds with either wheel.
#
# In:  LONGNET_PYTHON (a python with torch, optional), LONGNET_CUDA (AUTO|ON|OFF),
#      longnet_nvcc_found (whether a CUDA compiler exists).
# Out: target longnet::torch, LONGNET_TORCH_ROOT, LONGNET_TORCH_HAS_CUDA, LONGNET_TORCH_VERSION,
#      LONGNET_TORCH_MODE ("config" or "cpu-libraries").

function(longnet_python_query out code)
  if(NOT LONGNET_PYTHON)
    set(${out} "" PARENT_SCOPE)
    return()
  endif()
  execute_process(COMMAND "${LONGNET_PYTHON}" -c "${code}" OUTPUT_VARIABLE value
                  RESULT_VARIABLE rc ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(rc EQUAL 0)
    set(${out} "${value}" PARENT_SCOPE)
  else()
    set(${out} "" PARENT_SCOPE)
  endif()
endfunction()

# 1. Where is torch? Torch_DIR or CMAKE_PREFIX_PATH win; else ask python.
if(NOT LONGNET_PYTHON)
  find_program(_system_python python3)
  foreach(_py "${CMAKE_SOURCE_DIR}/.venv/bin/python3" "${_system_python}")
    if(_py AND EXISTS "${_py}")
      execute_process(COMMAND "${_py}" -c "import torch" RESULT_VARIABLE rc
                      OUTPUT_QUIET ERROR_QUIET)
      if(rc EQUAL 0)
        set(LONGNET_PYTHON "${_py}" CACHE FILEPATH "Python with torch" FORCE)
        break()
      endif()
    endif()
  endforeach()
endif()

find_path(LONGNET_TORCH_CMAKE_DIR Torch/TorchConfig.cmake
          HINTS "${Torch_DIR}/.." ENV Torch_DIR PATH_SUFFIXES share/cmake)
if(NOT LONGNET_TORCH_CMAKE_DIR)
  longnet_python_query(_prefix "import torch;print(torch.utils.cmake_prefix_path)")
  if(_prefix)
    set(LONGNET_TORCH_CMAKE_DIR "${_prefix}" CACHE PATH "LibTorch CMake dir" FORCE)
  endif()
endif()
if(NOT LONGNET_TORCH_CMAKE_DIR OR NOT EXISTS "${LONGNET_TORCH_CMAKE_DIR}/Torch/TorchConfig.cmake")
  message(FATAL_ERROR
    "longnet: LibTorch not found. Run launch/setup.sh (it installs torch into .venv), or pass "
    "-DCMAKE_PREFIX_PATH=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)') "
    "or -DLONGNET_PYTHON=/path/to/python-with-torch.")
endif()
get_filename_component(LONGNET_TORCH_ROOT "${LONGNET_TORCH_CMAKE_DIR}/../.." ABSOLUTE)

set(LONGNET_TORCH_HAS_CUDA OFF)
if(EXISTS "${LONGNET_TORCH_ROOT}/lib/libtorch_cuda.so")
  set(LONGNET_TORCH_HAS_CUDA ON)
endif()
set(LONGNET_TORCH_VERSION "")
foreach(_part MAJOR MINOR PATCH)
  file(STRINGS "${LONGNET_TORCH_ROOT}/include/torch/headeronly/version.h" _l
       REGEX "#define TORCH_VERSION_${_part} ")
  string(REGEX REPLACE ".* ([0-9]+)$" "\\1" _v "${_l}")
  list(APPEND LONGNET_TORCH_VERSION "${_v}")
endforeach()
string(REPLACE ";" "." LONGNET_TORCH_VERSION "${LONGNET_TORCH_VERSION}")

if(TARGET longnet::torch)
  return()
endif()
add_library(longnet::torch INTERFACE IMPORTED GLOBAL)
if(LONGNET_TORCH_HAS_CUDA AND NOT longnet_nvcc_found)
  # CUDA LibTorch on a machine with no CUDA compiler (or the CUDA path forced off without
  # one): TorchConfig.cmake would fail, and the CPU libraries are all we need.
  set(LONGNET_TORCH_MODE "cpu-libraries")
  find_library(LONGNET_TORCH_CPU_LIB torch_cpu PATHS "${LONGNET_TORCH_ROOT}/lib" NO_DEFAULT_PATH)
  find_library(LONGNET_C10_LIB c10 PATHS "${LONGNET_TORCH_ROOT}/lib" NO_DEFAULT_PATH)
  target_link_libraries(longnet::torch INTERFACE "${LONGNET_TORCH_CPU_LIB}" "${LONGNET_C10_LIB}")
  target_include_directories(longnet::torch SYSTEM INTERFACE
    "${LONGNET_TORCH_ROOT}/include" "${LONGNET_TORCH_ROOT}/include/torch/csrc/api/include")
  target_compile_features(longnet::torch INTERFACE cxx_std_17)
else()
  set(LONGNET_TORCH_MODE "config")
  list(PREPEND CMAKE_PREFIX_PATH "${LONGNET_TORCH_CMAKE_DIR}")
  # LibTorch's own arch selection reads TORCH_CUDA_ARCH_LIST; keep it to what we build for.
  if(NOT DEFINED TORCH_CUDA_ARCH_LIST AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
    set(TORCH_CUDA_ARCH_LIST "9.0")
  endif()
  find_package(Torch REQUIRED)
  target_link_libraries(longnet::torch INTERFACE ${TORCH_LIBRARIES})
  if(TORCH_CXX_FLAGS)
    separate_arguments(_torch_flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
    target_compile_options(longnet::torch INTERFACE $<$<COMPILE_LANGUAGE:CXX>:${_torch_flags}>)
  endif()
endif()

# LibTorch's ABI flag, for everything we compile (TorchConfig no longer sets it for new wheels).
longnet_python_query(_abi "import torch;print(int(torch._C._GLIBCXX_USE_CXX11_ABI))")
if(_abi STREQUAL "0" OR _abi STREQUAL "1")
  target_compile_definitions(longnet::torch INTERFACE _GLIBCXX_USE_CXX11_ABI=${_abi})
endif()
