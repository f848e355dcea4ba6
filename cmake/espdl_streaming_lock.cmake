# espdl_streaming: the lock (included by espdl_streaming.cmake).
#
# With ESPDL_STREAMING_LOCK_DIR set (CMake variable or cache variable, else environment variable; relative
# to the top source directory, e.g. espdl_streaming.lock), every model is built from the lock:
# <lock>/<chip>/<name>/ holds the outputs committed with the project and a manifest of the hashes of the
# inputs they were built from. The build takes them when every input still matches (no torch, no esp-ppq:
# any Python 3.10 runs it, and the configure-time check of the quantizer is skipped) and fails naming the
# changed input and the command that refreshes the lock:
#
#   cmake --build <build dir> --target espdl_streaming_lock
#
# That target (`python -m espdl_streaming lock --declarations <build>/espdl_streaming/declarations.json`)
# builds every declared model for every chip of ESPDL_STREAMING_LOCK_TARGETS (a list, default: the chip
# of this build; this build's chip is always included) and rewrites the entries whose inputs changed.

include_guard(GLOBAL)

# Cache entries for cmake-gui/ccmake, unless the project set the variables itself (set(CACHE) would hide
# a normal variable on the first configure under policy CMP0126 OLD, ESP-IDF's default).
if(NOT DEFINED ESPDL_STREAMING_LOCK_DIR)
    set(ESPDL_STREAMING_LOCK_DIR "" CACHE STRING
        "Build the espdl_streaming models from this lock directory (relative: to the top source directory)")
endif()
if(NOT DEFINED ESPDL_STREAMING_LOCK_TARGETS)
    set(ESPDL_STREAMING_LOCK_TARGETS "" CACHE STRING
        "Chips the espdl_streaming_lock target refreshes the lock for (default: this build's chip)")
endif()

# The lock directory (absolute), or "" when the build is not in lock mode.
function(__espdl_streaming_lock_dir out)
    set(dir "${ESPDL_STREAMING_LOCK_DIR}")
    if(dir STREQUAL "" AND NOT "$ENV{ESPDL_STREAMING_LOCK_DIR}" STREQUAL "")
        file(TO_CMAKE_PATH "$ENV{ESPDL_STREAMING_LOCK_DIR}" dir)
    endif()
    if(NOT dir STREQUAL "")
        get_filename_component(dir "${dir}" ABSOLUTE BASE_DIR "${CMAKE_SOURCE_DIR}")
    endif()
    set(${out} "${dir}" PARENT_SCOPE)
endfunction()

# In lock mode: the tool's flags in <out_flags>, and in <python_var> an interpreter that exists (the lock
# needs only the standard library: the caller's choice when it exists, else ESP-IDF's or any Python 3).
# Outside lock mode <out_flags> is empty and <python_var> unchanged.
function(__espdl_streaming_lock_flags out_flags python_var)
    __espdl_streaming_lock_dir(lock_dir)
    if(lock_dir STREQUAL "")
        set(${out_flags} "" PARENT_SCOPE)
        return()
    endif()
    set(python "${${python_var}}")
    if(NOT EXISTS "${python}")
        set(python "")
        if(COMMAND idf_build_get_property)
            idf_build_get_property(python PYTHON)
        endif()
        if(NOT python)
            find_package(Python3 COMPONENTS Interpreter QUIET)
            set(python "${Python3_EXECUTABLE}")
        endif()
        set(${python_var} "${python}" PARENT_SCOPE)
    endif()
    set(${out_flags} --lock-dir "${lock_dir}"
        --refresh-command "cmake --build ${CMAKE_BINARY_DIR} --target espdl_streaming_lock" PARENT_SCOPE)
endfunction()

# Records one model for the espdl_streaming_lock target: <args> are its build flags without --target and
# the output options. The declarations file and the target are made once every model is declared.
function(__espdl_streaming_lock_record name chip python)
    __espdl_streaming_lock_dir(lock_dir)
    if(lock_dir STREQUAL "")
        return()
    endif()
    set(args "")
    foreach(arg IN LISTS ARGN)
        __espdl_streaming_json_string(arg "${arg}")
        list(APPEND args "${arg}")
    endforeach()
    list(JOIN args ", " args)
    __espdl_streaming_json_string(json_name "${name}")
    set_property(GLOBAL APPEND PROPERTY __ESPDL_STREAMING_LOCK_MODELS
                 "{\"name\": ${json_name}, \"target\": \"${chip}\", \"args\": [${args}]}")
    set_property(GLOBAL APPEND PROPERTY __ESPDL_STREAMING_LOCK_CHIPS ${chip})
    get_property(scheduled GLOBAL PROPERTY __ESPDL_STREAMING_LOCK_DIR_USED SET)
    if(NOT scheduled)
        set_property(GLOBAL PROPERTY __ESPDL_STREAMING_LOCK_DIR_USED "${lock_dir}")
        set_property(GLOBAL PROPERTY __ESPDL_STREAMING_LOCK_PYTHON "${python}")
        cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL __espdl_streaming_lock_finish)
    endif()
endfunction()

function(__espdl_streaming_json_string out text)
    string(REPLACE "\\" "\\\\" text "${text}")
    string(REPLACE "\"" "\\\"" text "${text}")
    string(REPLACE "\n" "\\n" text "${text}")
    set(${out} "\"${text}\"" PARENT_SCOPE)
endfunction()

# Deferred to the end of the top directory: <build>/espdl_streaming/declarations.json and the
# espdl_streaming_lock target.
function(__espdl_streaming_lock_finish)
    get_property(lock_dir GLOBAL PROPERTY __ESPDL_STREAMING_LOCK_DIR_USED)
    get_property(python GLOBAL PROPERTY __ESPDL_STREAMING_LOCK_PYTHON)
    get_property(models GLOBAL PROPERTY __ESPDL_STREAMING_LOCK_MODELS)
    get_property(chips GLOBAL PROPERTY __ESPDL_STREAMING_LOCK_CHIPS)
    set(targets ${ESPDL_STREAMING_LOCK_TARGETS})
    if(NOT targets AND NOT "$ENV{ESPDL_STREAMING_LOCK_TARGETS}" STREQUAL "")
        string(REPLACE "," ";" targets "$ENV{ESPDL_STREAMING_LOCK_TARGETS}")
    endif()
    list(APPEND targets ${chips})
    list(REMOVE_DUPLICATES targets)
    set(quoted "")
    foreach(t IN LISTS targets)
        list(APPEND quoted "\"${t}\"")
    endforeach()
    list(JOIN quoted ", " quoted)
    list(JOIN models ",\n    " models)
    __espdl_streaming_json_string(project_dir "${CMAKE_SOURCE_DIR}")
    __espdl_streaming_json_string(lock_json "${lock_dir}")
    set(json "{\n  \"format\": 1,\n  \"project_dir\": ${project_dir},\n  \"lock_dir\": ${lock_json},\n")
    string(APPEND json "  \"targets\": [${quoted}],\n  \"models\": [\n    ${models}\n  ]\n}\n")
    set(file "${CMAKE_BINARY_DIR}/espdl_streaming/declarations.json")
    set(old "")
    if(EXISTS "${file}")
        file(READ "${file}" old)
    endif()
    if(NOT old STREQUAL json)
        file(WRITE "${file}" "${json}")
    endif()
    __espdl_streaming_component_dir(component_dir)
    add_custom_target(espdl_streaming_lock
        COMMAND "${CMAKE_COMMAND}" -E env "PYTHONPATH=${component_dir}/python" PYTHONHASHSEED=0
                "${python}" -m espdl_streaming lock --declarations "${file}"
        WORKING_DIRECTORY "${CMAKE_SOURCE_DIR}"
        COMMENT "espdl_streaming: refreshing the lock ${lock_dir} (${targets})"
        USES_TERMINAL
        VERBATIM)
endfunction()
