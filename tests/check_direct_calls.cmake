# SPDX-License-Identifier: BSD-2-Clause
# The allocation fast path binds directly: in the built shared library,
# neither the public malloc/free entry points, nor the internal functions
# they reach, nor the cache's allocations and frees call or jump to one
# of the library's own functions through the PLT (which would cost an indirect jump and let an interposer split
# one arena's code in two).
#   cmake -DLIBRARY=libshm_alloc.so -DOBJDUMP=objdump -P check_direct_calls.cmake
cmake_minimum_required(VERSION 3.22)

foreach(var LIBRARY OBJDUMP)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "check_direct_calls: ${var} is not set")
  endif()
endforeach()

set(hot shm_malloc shm_calloc shm_free shm_realloc shm_usable_size
        ptr_malloc ptr_free shm_arena_malloc shm_arena_free
        shmi_arena_malloc shmi_arena_free shmi_tree_alloc shmi_tree_free
        shmi_cache_chunk_new shmi_cache_update shmi_cache_reclaim)

execute_process(COMMAND ${OBJDUMP} -d --no-show-raw-insn ${LIBRARY}
  OUTPUT_VARIABLE dump RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "check_direct_calls: ${OBJDUMP} failed on ${LIBRARY}")
endif()
string(REPLACE ";" "," dump "${dump}")
string(REPLACE "\n" ";" lines "${dump}")

set(current "")
set(seen)
set(bad)
foreach(line ${lines})
  if(line MATCHES "^[0-9a-f]+ <([A-Za-z0-9_.@]+)>:$")
    set(current "${CMAKE_MATCH_1}")
    if(current IN_LIST hot)
      list(APPEND seen ${current})
    endif()
  elseif(current IN_LIST hot AND line MATCHES "(call|jmp).*<(shmi?_[A-Za-z0-9_]+)@plt>")
    list(APPEND bad "${current} -> ${CMAKE_MATCH_2}@plt")
  endif()
endforeach()

# Aliases share one body, which objdump names once: of each pair, one.
foreach(required shm_malloc shm_free shmi_tree_alloc shmi_tree_free
                 shmi_cache_chunk_new shmi_cache_reclaim)
  if(NOT required IN_LIST seen)
    message(FATAL_ERROR "check_direct_calls: ${required} not found in ${LIBRARY}")
  endif()
endforeach()
if(bad)
  string(REPLACE ";" "\n  " bad "${bad}")
  message(FATAL_ERROR "check_direct_calls: calls through the PLT:\n  ${bad}")
endif()
list(LENGTH seen n)
message(STATUS "check_direct_calls: ${n} hot functions, no PLT call among them")
