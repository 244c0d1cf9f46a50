# Runs CMD (arguments separated by '|'), and passes only if it exits non-zero within TIMEOUT
# seconds (no hang) with EXPECT somewhere in its output. Used for error paths of whole jobs.
string(REPLACE "|" ";" cmd "${CMD}")
execute_process(COMMAND ${cmd} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err
                TIMEOUT ${TIMEOUT})
set(all "${out}${err}")
if(rc MATCHES "timeout")
  message(FATAL_ERROR "the job did not end within ${TIMEOUT} s:\n${all}")
endif()
if(rc EQUAL 0)
  message(FATAL_ERROR "expected a failure, the job succeeded:\n${all}")
endif()
string(FIND "${all}" "${EXPECT}" pos)
if(pos EQUAL -1)
  message(FATAL_ERROR "the output lacks '${EXPECT}':\n${all}")
endif()
message(STATUS "failed as expected (exit ${rc}): ${EXPECT}")
