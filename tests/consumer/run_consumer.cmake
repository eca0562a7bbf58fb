# Installs sae into a scratch prefix, then configures, builds and runs tests/consumer against it.
file(REMOVE_RECURSE ${WORK_DIR})
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  message("${out}")
endfunction()
run(${CMAKE_COMMAND} -S ${SAE_SOURCE_DIR} -B ${WORK_DIR}/sae-build -DCMAKE_INSTALL_PREFIX=${WORK_DIR}/prefix
    -DSAE_BUILD_TESTS=OFF -DSAE_BUILD_EXAMPLES=OFF -DSAE_BUILD_BENCHMARKS=OFF)
run(${CMAKE_COMMAND} --install ${WORK_DIR}/sae-build)
run(${CMAKE_COMMAND} -S ${SAE_SOURCE_DIR}/tests/consumer -B ${WORK_DIR}/consumer-build
    -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/consumer-build)
run(${WORK_DIR}/consumer-build/consumer)
