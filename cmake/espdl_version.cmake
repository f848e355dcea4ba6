# The ESP-DL versions whose integer semantics espdl_streaming's simulator reproduces, and the check
# that the ESP-DL a project builds with is one of them. The golden vectors of every generated
# self_test() are computed with these semantics: ESP-DL 3.3.8 changed the int16 LUT from
# interpolation to a nearest-pivot lookup (dl_module_lut.hpp), so an older ESP-DL would fail
# self_test() on 16-bit models with LUT activations. Python holds the same range in
# espdl_streaming/espdl_semantics.py; python/tests/test_espdl_version.py checks they agree with
# each other and with idf_component.yml.
set(ESPDL_STREAMING_ESPDL_MIN "3.3.8")
set(ESPDL_STREAMING_ESPDL_BELOW "4.0.0")

# __espdl_streaming_espdl_version(<esp-dl component dir> <result var>)
#   The version the component's idf_component.yml declares, or "" (a local copy without one).
function(__espdl_streaming_espdl_version dir out)
    set(manifest "${dir}/idf_component.yml")
    set(version "")
    if(EXISTS "${manifest}")
        file(STRINGS "${manifest}" lines REGEX "^version:")
        if(lines)
            list(GET lines 0 line)
            string(REGEX REPLACE "^version:[ \t]*[\"']?([0-9]+(\\.[0-9]+)*)[^\"']*[\"']?.*$" "\\1" version "${line}")
        endif()
    endif()
    set(${out} "${version}" PARENT_SCOPE)
endfunction()

# __espdl_streaming_check_espdl_version(<esp-dl component dir> <result var>)
#   Sets <result var> to "" when the component's idf_component.yml declares a version in
#   [ESPDL_STREAMING_ESPDL_MIN, ESPDL_STREAMING_ESPDL_BELOW), else to the message that says why not.
#   A component without a manifest version (a local copy) is accepted with a "" result and a
#   STATUS message naming what was not checked.
function(__espdl_streaming_check_espdl_version dir out)
    set(manifest "${dir}/idf_component.yml")
    __espdl_streaming_espdl_version("${dir}" version)
    if(version STREQUAL "")
        message(STATUS "espdl_streaming: ${dir} declares no ESP-DL version; not checked against "
                       ">=${ESPDL_STREAMING_ESPDL_MIN}, <${ESPDL_STREAMING_ESPDL_BELOW}")
        set(${out} "" PARENT_SCOPE)
        return()
    endif()
    if(version VERSION_LESS ESPDL_STREAMING_ESPDL_MIN OR NOT version VERSION_LESS ESPDL_STREAMING_ESPDL_BELOW)
        set(${out} "ESP-DL ${version} (${manifest}) is not a version espdl_streaming verifies for: the golden "
                   "vectors of the generated self_test() assume the integer semantics of ESP-DL "
                   ">=${ESPDL_STREAMING_ESPDL_MIN}, <${ESPDL_STREAMING_ESPDL_BELOW} (3.3.8 changed the int16 LUT). "
                   "Use espressif/esp-dl \">=${ESPDL_STREAMING_ESPDL_MIN},<${ESPDL_STREAMING_ESPDL_BELOW}\" "
                   "in your idf_component.yml." PARENT_SCOPE)
    else()
        set(${out} "" PARENT_SCOPE)
    endif()
endfunction()
