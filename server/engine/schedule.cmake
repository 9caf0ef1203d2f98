# Export schedules: cron expressions and the system refresh schedule.
# Included by server/engine/CMakeLists.txt; paths are relative to this file.
add_library(exportd_schedule STATIC
  ${CMAKE_CURRENT_LIST_DIR}/cron.cc
  ${CMAKE_CURRENT_LIST_DIR}/refresh_schedule.cc)
target_include_directories(exportd_schedule PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(exportd_schedule PUBLIC exportd_time_zone absl::time absl::strings
  absl::status absl::statusor)

if(EXPORTD_BUILD_TESTS)
  add_executable(cron_test ${CMAKE_CURRENT_LIST_DIR}/cron_test.cc)
  target_link_libraries(cron_test PRIVATE exportd_schedule GTest::gmock GTest::gtest_main)
  gtest_discover_tests(cron_test)

  add_executable(refresh_schedule_test ${CMAKE_CURRENT_LIST_DIR}/refresh_schedule_test.cc)
  target_link_libraries(refresh_schedule_test PRIVATE exportd_schedule GTest::gmock
    GTest::gtest_main)
  gtest_discover_tests(refresh_schedule_test)
endif()
