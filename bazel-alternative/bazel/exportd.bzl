"""Macros that keep each BUILD file a line-by-line mirror of the CMakeLists.txt beside its sources.

A package here has the path of the CMake folder it mirrors (//server/store <-> server/store/).
File names are written as in CMake, relative to that folder; the macros turn them into labels of
the exportd sources (@exportd_src//:server/store/sqlite_store.cc). A folder's own headers are
always available to its targets; `include_dirs` mirrors target_include_directories:

    "//"             ${PROJECT_SOURCE_DIR}          (#include "server/store/store.h")
    "."              ${CMAKE_CURRENT_SOURCE_DIR}    (#include "registry.h" from elsewhere)
    "//tests/plugins" ${PROJECT_SOURCE_DIR}/tests/plugins
    "include"        a folder relative to this one  (sdk/include)

Quoted strings in `local_defines` are written as CMake writes them, e.g. 'X="value"'.
"""

# CMake's project(exportd VERSION ...): run-bazel-tests.sh checks that the two agree.
EXPORTD_VERSION = "0.1.0"

# CMake's CXX_VISIBILITY_PRESET hidden + VISIBILITY_INLINES_HIDDEN ON.
HIDDEN_VISIBILITY = ["-fvisibility=hidden", "-fvisibility-inlines-hidden"]

_SRC = "@exportd_src//:"

def _folder(path):
    """A folder of the source tree: "//x/y" from the root, anything else from this package."""
    if path.startswith("//"):
        path = path[2:]
    else:
        package = native.package_name()
        path = package if path in ("", ".") else package + "/" + path
    return path.rstrip("/")

def exportd_srcs(files):
    """Labels of files in this package's source folder ("sub/x.cc" and "//dir/x.cc" work too)."""
    labels = []
    for f in files:
        if f.startswith("//"):
            labels.append(_SRC + f[2:])
        else:
            labels.append(_SRC + native.package_name() + "/" + f)
    return labels

def _header_deps(hdrs_dirs):
    return [_SRC + "headers/" + _folder(d) for d in hdrs_dirs]

def _include_deps(include_dirs):
    deps = []
    for d in include_dirs:
        folder = _folder(d)
        deps.append(_SRC + ("repo_root" if folder == "" else "include/" + folder))
    return deps

def _quote_defines(defines):
    # Bazel tokenizes defines like a shell would; keep the quotes of 'X="value"' for the compiler.
    return [d.replace('"', '\\"') for d in defines]

def _cc_attrs(srcs, hdrs_dirs, include_dirs, deps, local_defines, kwargs):
    kwargs["srcs"] = exportd_srcs(srcs)
    kwargs["deps"] = deps + _header_deps(hdrs_dirs) + _include_deps(include_dirs)
    kwargs["local_defines"] = _quote_defines(local_defines)
    return kwargs

def exportd_cc_library(name, srcs = [], hdrs_dirs = ["."], include_dirs = [], deps = [], local_defines = [], **kwargs):
    """add_library(name STATIC|INTERFACE srcs...) with its include directories and links."""
    native.cc_library(name = name, **_cc_attrs(srcs, hdrs_dirs, include_dirs, deps, local_defines, kwargs))

def exportd_cc_binary(name, srcs = [], hdrs_dirs = ["."], include_dirs = [], deps = [], local_defines = [], output_name = None, **kwargs):
    """add_executable(name srcs...); `output_name` mirrors the OUTPUT_NAME property.

    Bazel names a binary after its file, so with output_name the binary is that target and
    `name` an alias of it.
    """
    binary = output_name or name
    native.cc_binary(name = binary, **_cc_attrs(srcs, hdrs_dirs, include_dirs, deps, local_defines, kwargs))
    if binary != name:
        native.alias(name = name, actual = ":" + binary, visibility = kwargs.get("visibility"))

def exportd_cc_test(name, srcs = [], hdrs_dirs = ["."], include_dirs = [], deps = [], local_defines = [], **kwargs):
    """add_executable(name srcs...) + gtest_discover_tests(name): one Bazel test per binary.

    Paths that CMake passes as compile definitions ($<TARGET_FILE:...>) are runfiles paths here,
    relative to the test's working directory, with the files in `data`.
    """
    native.cc_test(name = name, **_cc_attrs(srcs, hdrs_dirs, include_dirs, deps, local_defines, kwargs))

def exportd_shared_module(name, file_name, srcs = [], hdrs_dirs = ["."], include_dirs = [], deps = [], local_defines = [], copts = [], **kwargs):
    """add_library(name MODULE srcs...) with hidden visibility, built as `file_name`.

    The shared object is the target `file_name` (it may include a folder, like CMake's
    LIBRARY_OUTPUT_DIRECTORY); `name` is an alias of it, as in CMake.
    """
    native.cc_binary(
        name = file_name,
        linkshared = True,
        copts = HIDDEN_VISIBILITY + copts,
        **_cc_attrs(srcs, hdrs_dirs, include_dirs, deps, local_defines, kwargs)
    )
    native.alias(name = name, actual = ":" + file_name, visibility = kwargs.get("visibility"))

def exportd_add_plugin(name, srcs, deps = [], **kwargs):
    """plugins/CMakeLists.txt's exportd_add_plugin(name srcs...): libexportd_<name>.so."""
    exportd_shared_module(
        name = name,
        file_name = "libexportd_" + name + ".so",
        srcs = srcs,
        deps = deps + ["//sdk:exportd_sdk"],
        **kwargs
    )
