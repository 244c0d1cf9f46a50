# Finds LibTorch and defines the imported interface target `longnet::torch` that everything
# links. Also included by the installed package config (cmake/longnetConfig.cmake.in), so a
# consumer gets the same target, on the torch that the consumer's configure finds.
# The default pip wheel of torch is a CUDA build, whose TorchConfig.cmake insists on a CUDA
# toolkit; when our CUDA path is off we link its CPU libraries directly, so a CPU-only machine
# builds with either wheel.
#
# Where torch is looked for, in order: Torch_DIR (variable, then environment), CMAKE_PREFIX_PATH
# (variable, then environment), the torch of a python (LONGNET_PYTHON; when that is empty, the
# build tries .venv/bin/python3 and python3 on PATH, a consumer python3 on PATH), and last
# LONGNET_TORCH_HINT.
#
# In:  LONGNET_PYTHON (a python with torch, optional), longnet_nvcc_found (whether a CUDA
#      compiler exists). Set only by the package config: LONGNET_TORCH_PACKAGE (ON: nothing is
#      cached), LONGNET_TORCH_HINT (the torch longnet was built with), LONGNET_TORCH_EXPECT_VERSION
#      (the version longnet was built with; another is an error), LONGNET_TORCH_CXX11_ABI.
# Out: target longnet::torch, LONGNET_TORCH_CMAKE_DIR (holds Torch/TorchConfig.cmake),
#      LONGNET_TORCH_ROOT, LONGNET_TORCH_HAS_CUDA, LONGNET_TORCH_VERSION, LONGNET_TORCH_CXX11_ABI
#      (0, 1 or empty when unknown), LONGNET_TORCH_MODE ("config" or "cpu-libraries"),
#      LONGNET_TORCH_FOUND_BY (which of the places above it came from).

function(longnet_python_query out python code)
  set(${out} "" PARENT_SCOPE)
  if(NOT python)
    return()
  endif()
  execute_process(COMMAND "${python}" -c "${code}" OUTPUT_VARIABLE value
                  RESULT_VARIABLE rc ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(rc EQUAL 0)
    set(${out} "${value}" PARENT_SCOPE)
  endif()
endfunction()

# longnet_torch_locate(DIR HOW TRIED PYTHONS HINT): DIR gets the first folder holding
# Torch/TorchConfig.cmake in the order above, HOW where it came from, TRIED (when none) what was
# looked at. A CMAKE_PREFIX_PATH entry may be that folder (torch.utils.cmake_prefix_path) or a
# LibTorch root.
function(longnet_torch_locate dir_var how_var tried_var pythons hint)
  set(${dir_var} "" PARENT_SCOPE)
  set(dirs "")
  set(hows "")
  foreach(d "${Torch_DIR}" "$ENV{Torch_DIR}")
    if(d)
      list(APPEND dirs "${d}/..")
      list(APPEND hows "Torch_DIR")
    endif()
  endforeach()
  string(REPLACE ":" ";" env_prefixes "$ENV{CMAKE_PREFIX_PATH}")
  foreach(p ${CMAKE_PREFIX_PATH} ${env_prefixes})
    list(APPEND dirs "${p}" "${p}/share/cmake")
    list(APPEND hows "CMAKE_PREFIX_PATH" "CMAKE_PREFIX_PATH")
  endforeach()
  foreach(d IN ZIP_LISTS dirs hows)
    get_filename_component(d "${d_0}" ABSOLUTE)
    if(EXISTS "${d}/Torch/TorchConfig.cmake")
      set(${dir_var} "${d}" PARENT_SCOPE)
      set(${how_var} "${d_1}" PARENT_SCOPE)
      return()
    endif()
  endforeach()
  set(tried "Torch_DIR ('${Torch_DIR}', environment '$ENV{Torch_DIR}'), CMAKE_PREFIX_PATH "
            "('${CMAKE_PREFIX_PATH}', environment '$ENV{CMAKE_PREFIX_PATH}')")
  foreach(py ${pythons})
    longnet_python_query(prefix "${py}" "import torch;print(torch.utils.cmake_prefix_path)")
    if(prefix AND EXISTS "${prefix}/Torch/TorchConfig.cmake")
      set(${dir_var} "${prefix}" PARENT_SCOPE)
      set(${how_var} "the torch of ${py}" PARENT_SCOPE)
      return()
    endif()
    string(APPEND tried ", ${py} (cannot import torch)")
  endforeach()
  if(hint AND EXISTS "${hint}/Torch/TorchConfig.cmake")
    set(${dir_var} "${hint}" PARENT_SCOPE)
    set(${how_var} "the torch longnet was built with" PARENT_SCOPE)
    return()
  endif()
  if(hint)
    string(APPEND tried ", the torch longnet was built with (${hint}: gone)")
  endif()
  set(${tried_var} "${tried}" PARENT_SCOPE)
endfunction()

# 1. Where is torch?
if(LONGNET_TORCH_PACKAGE)
  set(_pythons "${LONGNET_PYTHON}")
  if(NOT LONGNET_PYTHON)
    find_program(_python3 python3 NO_CACHE)
    set(_pythons "")
    if(_python3)
      set(_pythons "${_python3}")
    endif()
  endif()
  longnet_torch_locate(LONGNET_TORCH_CMAKE_DIR LONGNET_TORCH_FOUND_BY _tried "${_pythons}"
                       "${LONGNET_TORCH_HINT}")
  if(NOT LONGNET_TORCH_CMAKE_DIR)
    message(FATAL_ERROR "longnet: LibTorch not found (longnet was built against torch "
      "${LONGNET_TORCH_EXPECT_VERSION}). Looked at: ${_tried}. Pass "
      "-DTorch_DIR=<torch>/share/cmake/Torch, or "
      "-DCMAKE_PREFIX_PATH=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)'), "
      "or -DLONGNET_PYTHON=/path/to/python-with-torch.")
  endif()
else()
  if(NOT LONGNET_PYTHON)
    find_program(_system_python python3 NO_CACHE)
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
  if(EXISTS "${LONGNET_TORCH_CMAKE_DIR}/Torch/TorchConfig.cmake")
    set(LONGNET_TORCH_FOUND_BY "LONGNET_TORCH_CMAKE_DIR")  # the cache: a configure before
  else()
    longnet_torch_locate(_dir LONGNET_TORCH_FOUND_BY _tried "${LONGNET_PYTHON}" "")
    if(NOT _dir)
      message(FATAL_ERROR
        "longnet: LibTorch not found (looked at: ${_tried}). Run launch/setup.sh (it installs "
        "torch into .venv), or pass "
        "-DCMAKE_PREFIX_PATH=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)') "
        "or -DLONGNET_PYTHON=/path/to/python-with-torch.")
    endif()
    set(LONGNET_TORCH_CMAKE_DIR "${_dir}" CACHE PATH
        "LibTorch CMake dir (holds Torch/TorchConfig.cmake)" FORCE)
  endif()
endif()
get_filename_component(LONGNET_TORCH_ROOT "${LONGNET_TORCH_CMAKE_DIR}/../.." ABSOLUTE)

# 2. What is it?
set(LONGNET_TORCH_HAS_CUDA OFF)
if(EXISTS "${LONGNET_TORCH_ROOT}/lib/libtorch_cuda.so")
  set(LONGNET_TORCH_HAS_CUDA ON)
endif()
set(LONGNET_TORCH_VERSION "")
foreach(_version_h "${LONGNET_TORCH_ROOT}/include/torch/headeronly/version.h"
                   "${LONGNET_TORCH_ROOT}/include/torch/csrc/api/include/torch/version.h")
  if(EXISTS "${_version_h}" AND NOT LONGNET_TORCH_VERSION)
    foreach(_part MAJOR MINOR PATCH)
      file(STRINGS "${_version_h}" _l REGEX "#define TORCH_VERSION_${_part} ")
      string(REGEX REPLACE ".* ([0-9]+)$" "\\1" _v "${_l}")
      list(APPEND LONGNET_TORCH_VERSION "${_v}")
    endforeach()
    string(REPLACE ";" "." LONGNET_TORCH_VERSION "${LONGNET_TORCH_VERSION}")
  endif()
endforeach()
if(LONGNET_TORCH_EXPECT_VERSION AND
   NOT LONGNET_TORCH_VERSION STREQUAL LONGNET_TORCH_EXPECT_VERSION)
  # LibTorch's C++ ABI changes between releases: linking would fail, or worse, crash.
  message(FATAL_ERROR "longnet: this longnet was built against LibTorch "
    "${LONGNET_TORCH_EXPECT_VERSION}, but the torch found (${LONGNET_TORCH_FOUND_BY}) at "
    "${LONGNET_TORCH_ROOT} is version '${LONGNET_TORCH_VERSION}'. Point Torch_DIR, "
    "CMAKE_PREFIX_PATH or LONGNET_PYTHON at torch ${LONGNET_TORCH_EXPECT_VERSION}, or rebuild "
    "and reinstall longnet against this torch.")
endif()

if(TARGET longnet::torch)
  return()
endif()
add_library(longnet::torch INTERFACE IMPORTED GLOBAL)
if(LONGNET_TORCH_HAS_CUDA AND NOT longnet_nvcc_found)
  # CUDA LibTorch on a machine with no CUDA compiler (or the CUDA path forced off without
  # one): TorchConfig.cmake would fail, and the CPU libraries are all we need.
  set(LONGNET_TORCH_MODE "cpu-libraries")
  find_library(LONGNET_TORCH_CPU_LIB torch_cpu PATHS "${LONGNET_TORCH_ROOT}/lib"
               NO_DEFAULT_PATH NO_CACHE)
  find_library(LONGNET_C10_LIB c10 PATHS "${LONGNET_TORCH_ROOT}/lib" NO_DEFAULT_PATH NO_CACHE)
  target_link_libraries(longnet::torch INTERFACE "${LONGNET_TORCH_CPU_LIB}" "${LONGNET_C10_LIB}")
  target_include_directories(longnet::torch SYSTEM INTERFACE
    "${LONGNET_TORCH_ROOT}/include" "${LONGNET_TORCH_ROOT}/include/torch/csrc/api/include")
  target_compile_features(longnet::torch INTERFACE cxx_std_17)
else()
  set(LONGNET_TORCH_MODE "config")
  set(_longnet_prefix_path "${CMAKE_PREFIX_PATH}")
  list(PREPEND CMAKE_PREFIX_PATH "${LONGNET_TORCH_CMAKE_DIR}")
  # LibTorch's own arch selection reads TORCH_CUDA_ARCH_LIST; keep it to what we build for.
  if(NOT DEFINED TORCH_CUDA_ARCH_LIST AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
    set(TORCH_CUDA_ARCH_LIST "9.0")
  endif()
  find_package(Torch REQUIRED)
  set(CMAKE_PREFIX_PATH "${_longnet_prefix_path}")
  target_link_libraries(longnet::torch INTERFACE ${TORCH_LIBRARIES})
  if(TORCH_CXX_FLAGS)
    separate_arguments(_torch_flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
    target_compile_options(longnet::torch INTERFACE $<$<COMPILE_LANGUAGE:CXX>:${_torch_flags}>)
  endif()
endif()

# LibTorch's ABI flag, for everything we compile (TorchConfig no longer sets it for new wheels).
# A consumer uses the flag longnet was built with (its headers pass std::string across).
if(NOT LONGNET_TORCH_PACKAGE)
  longnet_python_query(LONGNET_TORCH_CXX11_ABI "${LONGNET_PYTHON}"
                       "import torch;print(int(torch._C._GLIBCXX_USE_CXX11_ABI))")
endif()
if(LONGNET_TORCH_CXX11_ABI STREQUAL "0" OR LONGNET_TORCH_CXX11_ABI STREQUAL "1")
  target_compile_definitions(longnet::torch INTERFACE
                             _GLIBCXX_USE_CXX11_ABI=${LONGNET_TORCH_CXX11_ABI})
else()
  set(LONGNET_TORCH_CXX11_ABI "")
endif()
