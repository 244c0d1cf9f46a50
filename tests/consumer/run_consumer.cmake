# Installs the build into BUILD_DIR/consumer-install, then configures, builds and runs the
# consumer project against it. Directories persist, so a re-run with nothing changed is quick.
set(prefix "${BUILD_DIR}/consumer-install")
set(cbuild "${BUILD_DIR}/consumer-build")
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer: step failed (${rc}): ${ARGN}")
  endif()
endfunction()
run(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${prefix}")
run(${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${cbuild}" -G "${GENERATOR}"
    "-DCMAKE_PREFIX_PATH=${prefix};${TORCH_CMAKE_DIR}" -DCMAKE_BUILD_TYPE=Release)
run(${CMAKE_COMMAND} --build "${cbuild}")
run("${cbuild}/consumer")
