# SPDX-License-Identifier: BSD-2-Clause
# Every source, build and script file of the project names its license
# (SPDX-License-Identifier) in its first three lines.
#   cmake -DSOURCE_DIR=<repository> -P check_spdx.cmake
cmake_minimum_required(VERSION 3.22)

if(NOT DEFINED SOURCE_DIR)
  message(FATAL_ERROR "check_spdx: SOURCE_DIR is not set")
endif()

set(patterns)
foreach(dir src include tests tools bench fuzz examples python scripts cmake
            man .ci)
  foreach(ext c h cpp cmake sh py in)
    list(APPEND patterns ${SOURCE_DIR}/${dir}/*.${ext})
  endforeach()
  list(APPEND patterns ${SOURCE_DIR}/${dir}/CMakeLists.txt)
endforeach()
file(GLOB_RECURSE files ${patterns})
list(APPEND files ${SOURCE_DIR}/CMakeLists.txt ${SOURCE_DIR}/config.cmake
     ${SOURCE_DIR}/.ci/run)
set(missing)
set(count 0)
foreach(f ${files})
  if(f MATCHES "/build[^/]*/")
    continue()
  endif()
  math(EXPR count "${count} + 1")
  file(STRINGS ${f} head LIMIT_COUNT 3)
  if(NOT head MATCHES "SPDX-License-Identifier: BSD-2-Clause")
    file(RELATIVE_PATH rel ${SOURCE_DIR} ${f})
    list(APPEND missing ${rel})
  endif()
endforeach()
if(count LESS 100)
  message(FATAL_ERROR "check_spdx: found only ${count} files")
endif()
if(missing)
  string(REPLACE ";" "\n  " missing "${missing}")
  message(FATAL_ERROR "check_spdx: no SPDX-License-Identifier in:\n  ${missing}")
endif()
message(STATUS "check_spdx: ${count} files, each names its license")
