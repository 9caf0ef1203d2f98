# exportd-plugin-check's command line: --help, and one distinct reason, printed
# once, for a missing file, a directory and a file that is not ELF; with the
# test plugins (tests/plugins), the OK line of a good one and the refusal of
# one without a privacy statement.
#   cmake -DPLUGIN_CHECK=<exe> -DWORK_DIR=<dir> [-DTEST_PLUGIN_DIR=<dir>] -P plugin_check_test.cmake
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR}/dir)
file(WRITE ${WORK_DIR}/text.so "not a library\n")

function(expect_run args want_code want_out)
  execute_process(COMMAND ${PLUGIN_CHECK} ${args}
    RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT code EQUAL want_code)
    message(FATAL_ERROR "${args}: exit ${code}, want ${want_code}\n${out}${err}")
  endif()
  string(FIND "${out}" "${want_out}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "${args}: output lacks '${want_out}':\n${out}")
  endif()
  # Each reason once: on stdout, and not again on stderr.
  string(FIND "${out}" "${want_out}" last REVERSE)
  if(NOT at EQUAL last OR NOT "${err}" STREQUAL "")
    message(FATAL_ERROR "${args}: said more than once:\n${out}---\n${err}")
  endif()
endfunction()

expect_run("--help" 0 "usage: ")
expect_run("${WORK_DIR}/missing.so" 1 "cannot be loaded: no such file")
expect_run("${WORK_DIR}/dir" 1 "cannot be loaded: it is a directory")
expect_run("${WORK_DIR}/text.so" 1 "cannot be loaded: not an ELF shared library")
if(TEST_PLUGIN_DIR)
  expect_run("${TEST_PLUGIN_DIR}/libtest_good.so" 0
    "OK test_good 1.0.0 (ABI 4, privacy statement 2026-01-01)")
  expect_run("${TEST_PLUGIN_DIR}/libtest_good.so" 0
    "\"privacy_statement\": \"Data sent to test_good stays in this test.\"")
  expect_run("${TEST_PLUGIN_DIR}/libtest_no_privacy_statement.so" 1
    "the privacy statement is empty; set Manifest::privacy_statement")
endif()
execute_process(COMMAND ${PLUGIN_CHECK} --bogus RESULT_VARIABLE code OUTPUT_QUIET ERROR_QUIET)
if(NOT code EQUAL 2)
  message(FATAL_ERROR "--bogus: exit ${code}, want 2")
endif()
