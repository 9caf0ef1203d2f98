"""tests/plugins/CMakeLists.txt's exportd_add_test_plugin()."""

load("//bazel:exportd.bzl", "exportd_shared_module")

def exportd_add_test_plugin(name, srcs, local_defines = []):
    """A test plugin test_plugins/lib<name>.so (alias :<name>); returns its label."""
    exportd_shared_module(
        name = name,
        file_name = "test_plugins/lib%s.so" % name,
        srcs = srcs,
        local_defines = local_defines,
        deps = ["//sdk:exportd_sdk"],
        testonly = True,
    )
    return ":test_plugins/lib%s.so" % name
