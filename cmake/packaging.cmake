# SPDX-License-Identifier: BSD-2-Clause
# Debian packages with CPack, one per install component:
#
#   libshm-alloc<MAJOR>  runtime  libshm_alloc.so.<MAJOR> (named after the
#                                 SONAME, as Debian names libraries)
#   libshm-alloc-dev     dev      headers, libshm_alloc.so, libshm_alloc.a,
#                                 CMake package, pkg-config files, man3
#   shm-alloc-tools      tools    shm-stat (static: needs only libc), man1
#
#   cmake -S . -B build-deb -DCMAKE_BUILD_TYPE=Release \
#         -DCMAKE_INSTALL_PREFIX=/usr -DSHM_BUILD_TESTS=OFF
#   cmake --build build-deb -j2
#   (cd build-deb && cpack -G DEB)
#
# The prefix /usr at configure time puts the library in the multiarch
# directory (lib/x86_64-linux-gnu); the packages always install under /usr.
# tests/package/run.sh builds them, unpacks them into a scratch root and
# builds a consumer against what they hold.

set(CPACK_PACKAGE_NAME shm-alloc)
set(CPACK_PACKAGE_VENDOR shm_alloc)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(SHM_PACKAGE_CONTACT
  "shm_alloc maintainers <maintainers@users.noreply.h-seed-241ac48c.example>"
  CACHE STRING "the Maintainer field of the Debian packages")
set(CPACK_PACKAGE_CONTACT "${SHM_PACKAGE_CONTACT}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "lock-free heap shared by unrelated processes through a mapped file")
set(CPACK_RESOURCE_FILE_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL runtime dev tools)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Dependencies on libc from the ELF files (dpkg-shlibdeps), and a shlibs
# file in the runtime package so that programs packaged against it depend
# on it. While the major version is 0 a minor release may break the ABI
# under the same SONAME, so they depend on this exact version then.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY "=")
else()
  set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")
endif()

set(SHM_DEB_RUNTIME libshm-alloc${PROJECT_VERSION_MAJOR})
set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME ${SHM_DEB_RUNTIME})
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_RUNTIME_DESCRIPTION
  "${CPACK_PACKAGE_DESCRIPTION_SUMMARY}
 shm_alloc maps one file MAP_SHARED into every process that uses it and
 hands out offsets into it with shm_malloc and shm_free; buddy bitmaps
 in the file, changed only by atomic compare-and-swap, keep track of the
 free space, so no process ever waits for another.
 .
 This package holds the shared library.")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME libshm-alloc-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
# The headers and the namelink belong to exactly this build of the library.
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
  "${SHM_DEB_RUNTIME} (= ${CPACK_PACKAGE_VERSION}), libc6-dev")
set(CPACK_DEBIAN_DEV_DESCRIPTION
  "${CPACK_PACKAGE_DESCRIPTION_SUMMARY} (development files)
 The headers shm_alloc.h and shm_alloc_version.h, the static library, the
 CMake package (find_package(shm_alloc)), the pkg-config files shm_alloc
 and shm_alloc-static, and the manual pages of section 3.")

set(CPACK_DEBIAN_TOOLS_PACKAGE_NAME shm-alloc-tools)
set(CPACK_DEBIAN_TOOLS_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_TOOLS_DESCRIPTION
  "${CPACK_PACKAGE_DESCRIPTION_SUMMARY} (tools)
 shm-stat shows what an shm_alloc arena file holds: bytes in use and free,
 free chunks by size, a map of the blocks, a consistency check, or all of
 it as JSON. It opens the file read-only and is linked statically with
 the library.")

# Each package carries the license, as Debian wants it.
foreach(component runtime dev tools)
  string(TOUPPER ${component} upper)
  install(FILES ${PROJECT_SOURCE_DIR}/LICENSE
    DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/${CPACK_DEBIAN_${upper}_PACKAGE_NAME}
    RENAME copyright
    COMPONENT ${component})
endforeach()

include(CPack)
