# The optional libraries of the tokenizers and corpus readers (train/tokenizer*.cpp,
# train/input_stream.cpp, train/corpus.cpp). Each part is AUTO (compiled in when its library is
# found), ON (required) or OFF; a part left out is an error naming the package at run time.
#   LONGNET_TIKTOKEN       PCRE2 >= 10.34 (Debian libpcre2-dev)
#   LONGNET_SENTENCEPIECE  SentencePiece (Debian libsentencepiece-dev)
#   LONGNET_ZSTD           libzstd (Debian libzstd-dev)
#   LONGNET_GZIP           zlib (Debian zlib1g-dev)
#   LONGNET_JSONL          nlohmann/json, header-only (Debian nlohmann-json3-dev)
# Writes generated/longnet/longnet_tokenizer_config.h (LONGNET_WITH_* 0|1, rewritten only on
# change) and sets LONGNET_TOKENIZER_INCLUDE_DIRS and LONGNET_TOKENIZER_LIBRARIES for
# train/CMakeLists.txt.

set(LONGNET_TOKENIZER_DEFINITIONS "")
set(LONGNET_TOKENIZER_INCLUDE_DIRS "")
set(LONGNET_TOKENIZER_LIBRARIES "")

# longnet_optional_part(OPTION MACRO LABEL FOUND DETAIL PACKAGE): checks the option's value,
# fails for ON without FOUND, and records MACRO=0|1 with a status line. DETAIL says what was
# found, or (not FOUND) why it does not do, if not simply missing.
function(longnet_optional_part option macro label found detail package)
  set(${option} AUTO CACHE STRING "${macro}: AUTO (when ${package} is found), ON, OFF")
  set_property(CACHE ${option} PROPERTY STRINGS AUTO ON OFF)
  if(NOT ${option} MATCHES "^(AUTO|ON|OFF)$")
    message(FATAL_ERROR "${option} must be AUTO, ON or OFF (got '${${option}}').")
  endif()
  set(enabled 0)
  if(${option} STREQUAL "OFF")
    set(why "forced off (-D${option}=OFF)")
  elseif(NOT found)
    set(why "${package} not found")
    if(detail)
      set(why "${detail}")
    endif()
    if(${option} STREQUAL "ON")
      message(FATAL_ERROR "${option}=ON but ${why}. Install it (Debian: apt-get install "
                          "${package}) and reconfigure, or use -D${option}=AUTO or OFF.")
    endif()
    string(APPEND why "; install ${package} and reconfigure")
  else()
    set(enabled 1)
  endif()
  if(enabled)
    message(STATUS "longnet: ${label} ON (${detail})")
  else()
    message(STATUS "longnet: ${label} OFF: ${why}")
  endif()
  set(LONGNET_TOKENIZER_DEFINITIONS ${LONGNET_TOKENIZER_DEFINITIONS} ${macro}=${enabled} PARENT_SCOPE)
  set(_longnet_part_on ${enabled} PARENT_SCOPE)
endfunction()

# ---- tiktoken: PCRE2 (8-bit code units) --------------------------------------------------------
find_path(LONGNET_PCRE2_INCLUDE_DIR pcre2.h)
find_library(LONGNET_PCRE2_LIBRARY pcre2-8)
set(_found OFF)
set(_detail "")
if(LONGNET_PCRE2_LIBRARY AND EXISTS "${LONGNET_PCRE2_INCLUDE_DIR}/pcre2.h")
  file(STRINGS "${LONGNET_PCRE2_INCLUDE_DIR}/pcre2.h" _major REGEX "^#define PCRE2_MAJOR +[0-9]+")
  file(STRINGS "${LONGNET_PCRE2_INCLUDE_DIR}/pcre2.h" _minor REGEX "^#define PCRE2_MINOR +[0-9]+")
  string(REGEX REPLACE ".* ([0-9]+)$" "\\1" _major "${_major}")
  string(REGEX REPLACE ".* ([0-9]+)$" "\\1" _minor "${_minor}")
  if(_major GREATER 10 OR (_major EQUAL 10 AND _minor GREATER_EQUAL 34))
    set(_found ON)
    set(_detail "PCRE2 ${_major}.${_minor} at ${LONGNET_PCRE2_LIBRARY}")
  else()
    set(_detail "PCRE2 ${_major}.${_minor} is older than 10.34 (PCRE2_MATCH_INVALID_UTF)")
  endif()
endif()
longnet_optional_part(LONGNET_TIKTOKEN LONGNET_WITH_TIKTOKEN "tiktoken tokenizer" ${_found}
                      "${_detail}" "libpcre2-dev")
if(_longnet_part_on)
  list(APPEND LONGNET_TOKENIZER_INCLUDE_DIRS ${LONGNET_PCRE2_INCLUDE_DIR})
  list(APPEND LONGNET_TOKENIZER_LIBRARIES ${LONGNET_PCRE2_LIBRARY})
endif()

# ---- SentencePiece -------------------------------------------------------------------------------
find_path(LONGNET_SENTENCEPIECE_INCLUDE_DIR sentencepiece_processor.h)
find_library(LONGNET_SENTENCEPIECE_LIBRARY sentencepiece)
find_library(LONGNET_SENTENCEPIECE_TRAIN_LIBRARY sentencepiece_train)
set(_found OFF)
set(_detail "")
if(LONGNET_SENTENCEPIECE_INCLUDE_DIR AND LONGNET_SENTENCEPIECE_LIBRARY AND
   LONGNET_SENTENCEPIECE_TRAIN_LIBRARY AND
   EXISTS "${LONGNET_SENTENCEPIECE_INCLUDE_DIR}/sentencepiece_trainer.h")
  set(_found ON)
  set(_detail "${LONGNET_SENTENCEPIECE_LIBRARY}")
endif()
longnet_optional_part(LONGNET_SENTENCEPIECE LONGNET_WITH_SENTENCEPIECE
                      "sentencepiece tokenizer" ${_found} "${_detail}" "libsentencepiece-dev")
if(_longnet_part_on)
  list(APPEND LONGNET_TOKENIZER_INCLUDE_DIRS ${LONGNET_SENTENCEPIECE_INCLUDE_DIR})
  list(APPEND LONGNET_TOKENIZER_LIBRARIES ${LONGNET_SENTENCEPIECE_TRAIN_LIBRARY}
       ${LONGNET_SENTENCEPIECE_LIBRARY})
endif()

# ---- zstd ----------------------------------------------------------------------------------------
find_path(LONGNET_ZSTD_INCLUDE_DIR zstd.h)
find_library(LONGNET_ZSTD_LIBRARY zstd)
set(_found OFF)
set(_detail "")
if(LONGNET_ZSTD_LIBRARY AND EXISTS "${LONGNET_ZSTD_INCLUDE_DIR}/zstd.h")
  set(_found ON)
  set(_detail "${LONGNET_ZSTD_LIBRARY}")
endif()
longnet_optional_part(LONGNET_ZSTD LONGNET_WITH_ZSTD "zstd corpus input" ${_found} "${_detail}"
                      "libzstd-dev")
if(_longnet_part_on)
  list(APPEND LONGNET_TOKENIZER_INCLUDE_DIRS ${LONGNET_ZSTD_INCLUDE_DIR})
  list(APPEND LONGNET_TOKENIZER_LIBRARIES ${LONGNET_ZSTD_LIBRARY})
endif()

# ---- gzip: zlib ----------------------------------------------------------------------------------
find_package(ZLIB QUIET)
set(_detail "")
if(ZLIB_FOUND)
  set(_detail "zlib ${ZLIB_VERSION_STRING}")
endif()
longnet_optional_part(LONGNET_GZIP LONGNET_WITH_ZLIB "gzip corpus input" "${ZLIB_FOUND}"
                      "${_detail}" "zlib1g-dev")
if(_longnet_part_on)
  list(APPEND LONGNET_TOKENIZER_INCLUDE_DIRS ${ZLIB_INCLUDE_DIRS})
  list(APPEND LONGNET_TOKENIZER_LIBRARIES ${ZLIB_LIBRARIES})
endif()

# ---- JSON Lines: nlohmann/json (header-only) -----------------------------------------------------
find_path(LONGNET_NLOHMANN_JSON_INCLUDE_DIR nlohmann/json.hpp)
set(_found OFF)
set(_detail "")
if(EXISTS "${LONGNET_NLOHMANN_JSON_INCLUDE_DIR}/nlohmann/json.hpp")
  set(_found ON)
  set(_detail "nlohmann/json at ${LONGNET_NLOHMANN_JSON_INCLUDE_DIR}")
endif()
longnet_optional_part(LONGNET_JSONL LONGNET_WITH_JSON "JSONL corpus input" ${_found} "${_detail}"
                      "nlohmann-json3-dev")
if(_longnet_part_on)
  list(APPEND LONGNET_TOKENIZER_INCLUDE_DIRS ${LONGNET_NLOHMANN_JSON_INCLUDE_DIR})
endif()

list(REMOVE_DUPLICATES LONGNET_TOKENIZER_INCLUDE_DIRS)
set(_lines "// Generated by cmake/longnet_tokenizers.cmake: which optional parts this build has.\n")
foreach(_def ${LONGNET_TOKENIZER_DEFINITIONS})
  string(REPLACE "=" " " _def "${_def}")
  string(APPEND _lines "#define ${_def}\n")
endforeach()
file(CONFIGURE OUTPUT "${PROJECT_BINARY_DIR}/generated/longnet/longnet_tokenizer_config.h"
     CONTENT "${_lines}")
