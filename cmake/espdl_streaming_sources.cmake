# espdl_streaming: the runtime's C++ sources, listed once for every build that compiles them: the
# ESP-IDF component (../CMakeLists.txt) and the plain-CMake core (espdl_streaming.cmake:
# espdl_streaming_add_host_runtime, ../host/, ../tests/cmake_project/). The host engine is every
# src/host/*.cpp: a file added there is built everywhere.
#
# espdl_streaming_runtime_sources(<out> <backend> [NO_CONFIGURE_DEPENDS])
#   Absolute paths, sorted. Backend "espdl" (chips: dl::Model) or "host" (the host engine in
#   src/host/ and src/host/frontend/: ESP-IDF's linux target and host builds). src/espdl_model.cpp and
#   src/espdl_frontend.cpp are the chips' only (dl::Model, dl::audio). src/no_backend.cpp is in neither:
#   it is for runtime tests that inject their own model_interface (it has no front end either). The source directories become configure
#   dependencies of the calling directory (a file added, removed or renamed there re-runs the
#   configure) unless NO_CONFIGURE_DEPENDS (the component: as ESP-IDF's own SRC_DIRS globs).
#
# Plain CMake with no side effect but a global property: the component's CMakeLists.txt includes
# it in ESP-IDF's requirements pass too (script mode, no project_include.cmake).

include_guard(GLOBAL)

get_filename_component(__espdl_streaming_sources_root "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
set_property(GLOBAL PROPERTY __ESPDL_STREAMING_SOURCES_ROOT "${__espdl_streaming_sources_root}")
unset(__espdl_streaming_sources_root)

function(espdl_streaming_runtime_sources out backend)
    cmake_parse_arguments(arg "NO_CONFIGURE_DEPENDS" "" "" ${ARGN})
    if(arg_UNPARSED_ARGUMENTS)
        message(FATAL_ERROR "espdl_streaming_runtime_sources: unexpected arguments: ${arg_UNPARSED_ARGUMENTS}")
    endif()
    get_property(dir GLOBAL PROPERTY __ESPDL_STREAMING_SOURCES_ROOT)
    # Listed at configure time (no CONFIGURE_DEPENDS glob, re-run on every build); the directories
    # are configure dependencies instead (below).
    file(GLOB sources "${dir}/src/*.cpp" "${dir}/src/*.c")
    set(dirs "${dir}/src")
    if(backend STREQUAL "espdl")
        list(FILTER sources EXCLUDE REGEX "/no_backend\\.cpp$")
    elseif(backend STREQUAL "host")
        list(FILTER sources EXCLUDE REGEX "/(espdl_model|espdl_frontend|no_backend)\\.cpp$")
        file(GLOB host_sources "${dir}/src/host/*.cpp" "${dir}/src/host/frontend/*.cpp")
        list(APPEND sources ${host_sources})
        list(APPEND dirs "${dir}/src/host" "${dir}/src/host/frontend")
    else()
        message(FATAL_ERROR "espdl_streaming_runtime_sources: backend must be espdl or host")
    endif()
    if(NOT arg_NO_CONFIGURE_DEPENDS)
        set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${dirs})
    endif()
    list(SORT sources)
    set(${out} "${sources}" PARENT_SCOPE)
endfunction()
