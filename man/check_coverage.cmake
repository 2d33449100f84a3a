# SPDX-License-Identifier: BSD-2-Clause
# Fails unless every function the shared library exports (nm -D
# --defined-only, type T) has a manual page or a link in MAN_DIR/man3:
#   cmake -DLIBRARY=libshm_alloc.so -DNM=nm -DMAN_DIR=build/man
#         [-DPRETEND_MISSING=name] -P THIS
# PRETEND_MISSING treats one page as absent (the test that this check can
# fail). Run by ctest as man_pages_cover_the_api.
cmake_minimum_required(VERSION 3.22)
foreach(var LIBRARY NM MAN_DIR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "check_coverage: ${var} is not set")
  endif()
endforeach()
execute_process(COMMAND ${NM} -D --defined-only ${LIBRARY}
  OUTPUT_VARIABLE nm_out RESULT_VARIABLE nm_rc)
if(NOT nm_rc EQUAL 0)
  message(FATAL_ERROR "check_coverage: ${NM} failed on ${LIBRARY}")
endif()
string(REPLACE "\n" ";" nm_lines "${nm_out}")
set(functions)
foreach(line ${nm_lines})
  if(line MATCHES "^[0-9a-fA-F]* T ([^ ]+)$")
    string(REGEX REPLACE "@.*" "" sym "${CMAKE_MATCH_1}")
    if(NOT sym MATCHES "^(_init|_fini)$")
      list(APPEND functions ${sym})
    endif()
  endif()
endforeach()
list(LENGTH functions count)
if(count LESS 10)
  message(FATAL_ERROR "check_coverage: only ${count} functions in ${LIBRARY}")
endif()
set(missing)
foreach(fn ${functions})
  if(fn STREQUAL "${PRETEND_MISSING}" OR NOT EXISTS ${MAN_DIR}/man3/${fn}.3)
    list(APPEND missing ${fn})
  endif()
endforeach()
if(missing)
  list(JOIN missing " " text)
  message(FATAL_ERROR "no manual page for: ${text} (add the name to the "
    "NAME section of a page in man/, or write man/NAME.3.scd)")
endif()
message(STATUS "all ${count} exported functions have a manual page in ${MAN_DIR}/man3")
