#!/bin/sh
echo "bazel coverage is not available in the offline exportd workspace" >&2
exit 1
