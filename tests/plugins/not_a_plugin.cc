// A valid shared library that is not an exportd plugin.
extern "C" __attribute__((visibility("default"))) int exportd_test_not_a_plugin() { return 42; }
