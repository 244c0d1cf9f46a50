# Finds NCCL and defines the imported target `longnet::nccl` (linked privately by liblongnet).
# LibTorch loads its own libnccl.so.2 (the nvidia-nccl wheel beside torch); we link that same
# file and its header, so one NCCL lives in the process. A system NCCL is the fallback.
#
# Out: target longnet::nccl, LONGNET_NCCL_FOUND, LONGNET_NCCL_LIBRARY, LONGNET_NCCL_VERSION.

get_filename_component(_site "${LONGNET_TORCH_ROOT}/.." ABSOLUTE)
set(_hint_inc "${_site}/nvidia/nccl/include")
set(_hint_lib "${_site}/nvidia/nccl/lib")

set(LONGNET_NCCL_FOUND OFF)
if(EXISTS "${_hint_inc}/nccl.h")
  set(LONGNET_NCCL_INCLUDE_DIR "${_hint_inc}")
  find_library(LONGNET_NCCL_LIBRARY NAMES nccl libnccl.so.2 PATHS "${_hint_lib}" NO_DEFAULT_PATH)
else()
  find_path(LONGNET_NCCL_INCLUDE_DIR nccl.h HINTS ENV NCCL_HOME "${CUDAToolkit_INCLUDE_DIRS}"
            PATH_SUFFIXES include)
  find_library(LONGNET_NCCL_LIBRARY NAMES nccl libnccl.so.2 HINTS ENV NCCL_HOME
               "${CUDAToolkit_LIBRARY_DIR}" PATH_SUFFIXES lib lib64)
endif()

if(LONGNET_NCCL_INCLUDE_DIR AND LONGNET_NCCL_LIBRARY)
  set(LONGNET_NCCL_FOUND ON)
  file(STRINGS "${LONGNET_NCCL_INCLUDE_DIR}/nccl.h" _lines REGEX "#define NCCL_(MAJOR|MINOR|PATCH) ")
  foreach(_l ${_lines})
    string(REGEX REPLACE "#define NCCL_([A-Z]+) +([0-9]+).*" "\\1=\\2" _kv "${_l}")
    list(APPEND _parts "${_kv}")
  endforeach()
  string(REGEX MATCH "MAJOR=([0-9]+)" _m "${_parts}")
  set(_maj "${CMAKE_MATCH_1}")
  string(REGEX MATCH "MINOR=([0-9]+)" _m "${_parts}")
  set(_min "${CMAKE_MATCH_1}")
  string(REGEX MATCH "PATCH=([0-9]+)" _m "${_parts}")
  set(LONGNET_NCCL_VERSION "${_maj}.${_min}.${CMAKE_MATCH_1}")
  add_library(longnet::nccl INTERFACE IMPORTED GLOBAL)
  target_include_directories(longnet::nccl SYSTEM INTERFACE "${LONGNET_NCCL_INCLUDE_DIR}")
  target_link_libraries(longnet::nccl INTERFACE "${LONGNET_NCCL_LIBRARY}")
endif()
