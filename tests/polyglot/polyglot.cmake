# Shared by client/python/CMakeLists.txt and client/node/CMakeLists.txt.
#
# exportd_polyglot_fixture() registers, once, the test `polyglot_build` that
# builds exportd and the jsonl plugin (`cmake --build --target exportd jsonl`,
# a no-op after a full build) as the CTest fixture `exportd_polyglot_binaries`;
# the client tests require it, so they never run against a stale or missing
# exportd or plugin.
#
# exportd_polyglot_test(NAME name ARGS driver-args... COMMAND command...) adds a
# test that runs tests/polyglot/run_example_test.py with the real exportd on
# 127.0.0.1:0 and the build's plugin directory.
set(EXPORTD_POLYGLOT_DIR ${CMAKE_CURRENT_LIST_DIR})
# The clients run with Debian's python3 (python3-grpcio, python3-protobuf), not
# whatever python3 comes first on PATH.
set(EXPORTD_SYSTEM_PYTHON3 /usr/bin/python3 CACHE FILEPATH
  "The python3 with grpcio and protobuf that runs the Python client tests")

function(exportd_polyglot_fixture)
  get_property(done GLOBAL PROPERTY EXPORTD_POLYGLOT_FIXTURE_DEFINED)
  if(done)
    return()
  endif()
  set_property(GLOBAL PROPERTY EXPORTD_POLYGLOT_FIXTURE_DEFINED TRUE)
  add_test(NAME polyglot_build
    COMMAND ${CMAKE_COMMAND} --build ${CMAKE_BINARY_DIR} --target exportd jsonl)
  set_tests_properties(polyglot_build PROPERTIES
    FIXTURES_SETUP exportd_polyglot_binaries
    RESOURCE_LOCK exportd_build_tree
    TIMEOUT 1800)
endfunction()

function(exportd_polyglot_test)
  cmake_parse_arguments(T "" "NAME" "ARGS;COMMAND" ${ARGN})
  exportd_polyglot_fixture()
  add_test(NAME ${T_NAME}
    COMMAND ${EXPORTD_SYSTEM_PYTHON3} ${EXPORTD_POLYGLOT_DIR}/run_example_test.py
      --exportd $<TARGET_FILE:exportd>
      --plugin-dir ${EXPORTD_PLUGIN_OUTPUT_DIRECTORY}
      --expect-destination jsonl
      --work-dir ${CMAKE_CURRENT_BINARY_DIR}/${T_NAME}
      ${T_ARGS}
      -- ${T_COMMAND})
  set_tests_properties(${T_NAME} PROPERTIES
    FIXTURES_REQUIRED exportd_polyglot_binaries
    LABELS "polyglot"
    TIMEOUT 180)
endfunction()
