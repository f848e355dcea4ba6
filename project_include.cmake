# espdl_streaming: ESP-IDF build integration.
#
# espdl_streaming_add_model(<name>
#     MODEL <file.py>:<factory> | <file.onnx>
#     INPUT_SHAPE <dim>...
#     CHUNK_FRAMES <n>
#     [CALIBRATION <file.npy> | <file.npz> | <file.py>:<function>]   # with FRONTEND also <file.wav> | <folder>
#     [CALIB_STEPS <n>]                      # default: CONFIG_ESPDL_STREAMING_CALIB_STEPS
#     [QUANT w8a8 | w8a16 | w16a16 | auto]   # default: w8a8 (BITS 8 | 16: alias of w8a8 | w16a16)
#     [EVAL <file.npy> | <file.npz> | <file.py>:<function>]   # default: held-out calibration data
#     [MIN_SNR_DB <dB>]                      # default: CONFIG_ESPDL_STREAMING_MIN_SNR_DB (off)
#     [STRICT]                               # default: CONFIG_ESPDL_STREAMING_STRICT
#     [CALIB_ALGORITHM kl | minmax | percentile | mse]   # default: esp-ppq's for the scheme
#     [CALIB_OPTIONS equalization | bias_correction ...]
#     [PLACEMENT RODATA | PLACEMENT PARTITION <label>]   # default: RODATA
#     [FRONTEND fbank | mfcc | spectrogram]  # the speech front end; its options (SAMPLE_RATE,
#                                            # NUM_MEL_BINS, ..., RESAMPLE): README "Speech front end"
#     [TARGET <cmake-target>]                # default: the calling component's library
#     [DEPENDS <file>...])
#
# Call it in a component's CMakeLists.txt after idf_component_register(), e.g.
#
#   idf_component_register(SRCS "app_main.cpp" PRIV_REQUIRES espdl_streaming)
#   espdl_streaming_add_model(kws MODEL model/tcn.py:build INPUT_SHAPE 1 16 24 CHUNK_FRAMES 3
#                             CALIBRATION model/calib.npy)
#
# and `#include "kws.hpp"` to use espdl_streaming::models::kws. At build time the model is
# quantized with esp-ppq for IDF_TARGET (on the linux target: for
# CONFIG_ESPDL_STREAMING_HOST_CHIP), converted to streaming, verified bit-exact against the
# offline model by host simulation (CONFIG_ESPDL_STREAMING_VERIFY_CHUNKS chunks), and the typed
# C++ class is generated; it reruns only when the model file, the calibration data, a Python
# module the model imports, or the tool itself changes. Relative paths are resolved against the
# calling component's directory. Generated files: build/esp-idf/<component>/espdl_streaming/<name>/.
#
# RODATA links the .espdl into the app (16-byte aligned). PARTITION <label> puts it in a flash
# data partition (added to `idf.py flash`); the build fails, with the partitions.csv line to
# write, when the partition is missing or too small.
#
# The tool runs with ESPDL_STREAMING_PYTHON (CMake cache variable, then environment variable),
# else the component's own environment made by tools/espdl_streaming_env.py (or
# `idf.py espdl-streaming-setup`), never ESP-IDF's Python: without it the build (not the configure,
# so menuconfig works) stops with that one command.

# Inside functions CMAKE_CURRENT_LIST_DIR is the caller's: capture ours (and our component name,
# which depends on how the component was added) now.
set_property(GLOBAL PROPERTY ESPDL_STREAMING_IDF_COMPONENT "${COMPONENT_NAME}")
include("${CMAKE_CURRENT_LIST_DIR}/cmake/espdl_streaming.cmake")
include("${CMAKE_CURRENT_LIST_DIR}/cmake/espdl_version.cmake")

function(espdl_streaming_add_model name)
    # Component CMakeLists.txt files are first evaluated for their requirements only; nothing
    # to declare then (ESP-IDF stops at idf_component_register() in that pass anyway).
    if(CMAKE_BUILD_EARLY_EXPANSION)
        return()
    endif()

    set_property(GLOBAL PROPERTY __ESPDL_STREAMING_CALLER espdl_streaming_add_model)
    __espdl_streaming_frontend_keywords(frontend_keywords)
    set(single TARGET MODEL CHUNK_FRAMES CALIBRATION CALIB_STEPS BITS VERIFY_CHUNKS QUANT EVAL MIN_SNR_DB
               CALIB_ALGORITHM ${frontend_keywords})
    set(multi INPUT_SHAPE PLACEMENT DEPENDS CALIB_OPTIONS)
    set(args "${ARGN}")
    __espdl_streaming_check_keywords("${name}" "STRICT" "${single}" "${multi}" "${CMAKE_CURRENT_SOURCE_DIR}" ${args})
    cmake_parse_arguments(PARSE_ARGV 1 arg "STRICT" "${single}" "${multi}")

    if(NOT arg_TARGET)
        if(NOT COMPONENT_LIB OR NOT TARGET "${COMPONENT_LIB}")
            message(FATAL_ERROR "espdl_streaming_add_model(${name}): call it in a component's "
                                "CMakeLists.txt after idf_component_register(), or pass TARGET")
        endif()
        set(arg_TARGET "${COMPONENT_LIB}")
    endif()

    idf_build_get_property(idf_target IDF_TARGET)
    if(idf_target STREQUAL "linux")
        set(chip "${CONFIG_ESPDL_STREAMING_HOST_CHIP}")
        if(NOT chip)
            set(chip esp32p4)
        endif()
    else()
        set(chip "${idf_target}")
    endif()
    # The ESP-DL the app builds with (chips only): QUANT w8a16 needs one that loads W8A16 layers, and
    # QUANT auto keeps to what it loads.
    set(espdl_version "")
    if(NOT idf_target STREQUAL "linux")
        idf_build_get_property(build_components BUILD_COMPONENTS)
        foreach(component ${build_components})
            if(component MATCHES "(^|__)esp-dl$")
                idf_component_get_property(espdl_dir ${component} COMPONENT_DIR)
                __espdl_streaming_espdl_version("${espdl_dir}" espdl_version)
            endif()
        endforeach()
    endif()

    # ESPDL_STREAMING_PYTHON (cache, then environment variable), else the component's own environment
    # (tools/espdl_streaming_env.py, found without any variable); never ESP-IDF's Python: without the
    # environment the build (not the configure: menuconfig works) fails with the set-up command.
    __espdl_streaming_default_python(python IDF)

    # Kconfig defaults, passed as explicit flags.
    if(NOT DEFINED arg_CALIB_STEPS AND CONFIG_ESPDL_STREAMING_CALIB_STEPS)
        set(arg_CALIB_STEPS ${CONFIG_ESPDL_STREAMING_CALIB_STEPS})
    endif()
    if(NOT DEFINED arg_VERIFY_CHUNKS AND CONFIG_ESPDL_STREAMING_VERIFY_CHUNKS)
        set(arg_VERIFY_CHUNKS ${CONFIG_ESPDL_STREAMING_VERIFY_CHUNKS})
    endif()

    if(NOT DEFINED arg_MIN_SNR_DB AND NOT "${CONFIG_ESPDL_STREAMING_MIN_SNR_DB}" STREQUAL "")
        set(arg_MIN_SNR_DB "${CONFIG_ESPDL_STREAMING_MIN_SNR_DB}")
    endif()
    if(NOT arg_STRICT AND CONFIG_ESPDL_STREAMING_STRICT)
        set(arg_STRICT TRUE)
    endif()

    __espdl_streaming_forward_args(forward "${single};${multi};STRICT" "")
    if(espdl_version)
        list(APPEND forward ESPDL_VERSION ${espdl_version})
    endif()
    __espdl_streaming_add_model("${name}" CHIP "${chip}" PYTHON "${python}"
                                BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}"
                                ${forward} ${arg_UNPARSED_ARGUMENTS})

    # The runtime the generated code includes and calls.
    get_property(runtime_component GLOBAL PROPERTY ESPDL_STREAMING_IDF_COMPONENT)
    idf_component_get_property(runtime_lib "${runtime_component}" COMPONENT_LIB)
    if(NOT runtime_lib STREQUAL arg_TARGET)
        target_link_libraries(${arg_TARGET} PUBLIC "${runtime_lib}")
    endif()

    get_target_property(placement espdl_streaming_${name} ESPDL_STREAMING_PLACEMENT)
    if(placement STREQUAL "PARTITION")
        __espdl_streaming_idf_partition(${name} ${arg_TARGET})
    endif()
endfunction()

# PARTITION placement: check the size at build time and flash the .espdl with the app.
function(__espdl_streaming_idf_partition name owner)
    get_target_property(espdl espdl_streaming_${name} ESPDL_STREAMING_FILE)
    get_target_property(label espdl_streaming_${name} ESPDL_STREAMING_PARTITION)
    get_target_property(out_dir espdl_streaming_${name} ESPDL_STREAMING_OUT_DIR)
    idf_build_get_property(idf_target IDF_TARGET)

    if(NOT COMMAND partition_table_get_partition_info)
        fail_at_build_time(espdl_streaming_${name}_partition
            "espdl_streaming_add_model(${name}): PARTITION ${label} needs the partition_table "
            "component in the build (add esp_partition to the component's PRIV_REQUIRES)")
        return()
    endif()
    partition_table_get_partition_info(size "--partition-name ${label}" "size")

    set(stamp "${out_dir}/${name}.partition_ok")
    add_custom_command(
        OUTPUT "${stamp}"
        COMMAND "${CMAKE_COMMAND}" -DNAME=${name} "-DESPDL=${espdl}" -DLABEL=${label}
                "-DPARTITION_SIZE=${size}" "-DCSV=${PARTITION_CSV_PATH}" "-DSTAMP=${stamp}"
                -P "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/cmake/check_partition.cmake"
        DEPENDS "${espdl}" "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/cmake/check_partition.cmake"
        COMMENT "espdl_streaming: checking that ${name}.espdl fits partition ${label}"
        VERBATIM)
    add_custom_target(espdl_streaming_${name}_partition ALL DEPENDS "${stamp}")
    add_dependencies(espdl_streaming_${name}_partition espdl_streaming_${name})

    if(NOT size)
        return()  # the check above fails the build with the line to add
    endif()
    if(idf_target STREQUAL "linux" AND TARGET idf::esp_partition)
        # The runtime's load_model() maps the partition of the emulated flash for the host engine.
        target_link_libraries(${owner} PRIVATE idf::esp_partition)
    endif()
    if(COMMAND esp_partition_register_target)
        # Recent ESP-IDF: `idf.py flash` and `<label>-flash` on chips, emulated flash on linux.
        esp_partition_register_target(${label} "${espdl}"
            DEPENDS espdl_streaming_${name}_partition FLASH_IN_PROJECT)
    elseif(NOT idf_target STREQUAL "linux")
        esptool_py_flash_to_partition(flash ${label} "${espdl}")
        add_dependencies(flash espdl_streaming_${name}_partition)
    endif()
endfunction()
