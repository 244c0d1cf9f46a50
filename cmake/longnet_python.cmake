# The Python package `longnet` (python/longnet): the build that `pip install` runs through
# scikit-build-core (pyproject.toml), with -DLONGNET_PYTHON_PACKAGE=ON. It builds only
# liblongnet_core.so and liblongnet_ops.so (torch is the one dependency: no MPI, yaml-cpp or
# GoogleTest) and installs them into the package folder, beside the Python files that
# scikit-build-core copies from python/longnet.
#
# Included twice from the top-level CMakeLists.txt: first before LibTorch is looked for (this file's
# body: pick the python that runs pip, turn the tests off), then longnet_python_package() after
# core/ is added (install rules; the top level stops there).
#
# The extension is C++ against LibTorch's unstable ABI, so it only works with the very torch it
# was compiled against: we build against the torch already installed in the python that runs pip
# (`pip install --no-build-isolation .`), never a torch pip would fetch into an isolated build
# environment, and record its version in longnet/_build_info.py, which the package checks at load.

if(NOT LONGNET_PYTHON)
  if(Python_EXECUTABLE)  # scikit-build-core passes the python that runs the build
    set(LONGNET_PYTHON "${Python_EXECUTABLE}" CACHE FILEPATH "A python whose torch provides LibTorch" FORCE)
  else()
    find_package(Python COMPONENTS Interpreter REQUIRED)
    set(LONGNET_PYTHON "${Python_EXECUTABLE}" CACHE FILEPATH "A python whose torch provides LibTorch" FORCE)
  endif()
endif()
execute_process(COMMAND "${LONGNET_PYTHON}" -c "import torch; print(torch.__version__)"
                OUTPUT_VARIABLE LONGNET_PYTHON_TORCH_VERSION RESULT_VARIABLE _torch_rc
                OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT _torch_rc EQUAL 0)
  message(FATAL_ERROR "longnet: ${LONGNET_PYTHON} cannot import torch. The package is built "
    "against the torch installed in the python that runs pip: install torch first, then run "
    "`python -m pip install --no-build-isolation .` (with build isolation, pip hides the "
    "installed torch from the build).")
endif()
set(LONGNET_BUILD_TESTS OFF CACHE BOOL "Build the tests" FORCE)
message(STATUS "longnet: Python package build against torch ${LONGNET_PYTHON_TORCH_VERSION} "
               "of ${LONGNET_PYTHON}")

# Install rules: the two libraries and _build_info.py into the package folder `longnet/` (the
# wheel's platlib). They find each other through $ORIGIN; LibTorch and the CUDA runtime are
# already in the process (the package imports torch before it loads them), and ../torch/lib
# covers torch installed beside the package. No absolute build-machine paths.
function(longnet_python_package)
  set_target_properties(longnet_core longnet_ops PROPERTIES
    INSTALL_RPATH "$ORIGIN;$ORIGIN/../torch/lib" INSTALL_RPATH_USE_LINK_PATH OFF)
  install(TARGETS longnet_core longnet_ops LIBRARY DESTINATION longnet)
  set(_info "${PROJECT_BINARY_DIR}/generated/_build_info.py")
  set(_cuda False)
  if(LONGNET_CUDA_ENABLED)
    set(_cuda True)
  endif()
  file(WRITE "${_info}"
    "\"\"\"Written by the package build (cmake/longnet_python.cmake).\"\"\"\n"
    "VERSION = \"${PROJECT_VERSION}\"\n"
    "TORCH_VERSION = \"${LONGNET_PYTHON_TORCH_VERSION}\"\n"
    "CUDA = ${_cuda}\n")
  install(FILES "${_info}" DESTINATION longnet)
endfunction()
