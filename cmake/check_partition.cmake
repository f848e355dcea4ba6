# Build-time check that a generated model fits its flash data partition (cmake -P).
#
#   cmake -DNAME=<model> -DESPDL=<file> -DLABEL=<partition> -DPARTITION_SIZE=<bytes or empty>
#         -DCSV=<partitions.csv> -DSTAMP=<file written on success> -P check_partition.cmake
#
# An empty PARTITION_SIZE means the partition table has no partition with that label. Both
# failures print the partitions.csv line that fixes them, with the size rounded up to the 4 KiB
# flash sector.
foreach(var NAME ESPDL LABEL CSV STAMP)
    if(NOT DEFINED ${var})
        message(FATAL_ERROR "check_partition.cmake: -D${var}=... is required")
    endif()
endforeach()

file(SIZE "${ESPDL}" model_size)
math(EXPR needed "((${model_size} + 4095) / 4096) * 4096")
math(EXPR needed_hex "${needed}" OUTPUT_FORMAT HEXADECIMAL)
math(EXPR needed_k "${needed} / 1024")
get_filename_component(file_name "${ESPDL}" NAME)
set(line "${LABEL},  data, spiffs,  ,  ${needed_k}K,")

if("${PARTITION_SIZE}" STREQUAL "")
    message(FATAL_ERROR
        "espdl_streaming_add_model(${NAME}): PARTITION '${LABEL}' is not in the partition table "
        "${CSV}. ${file_name} is ${model_size} bytes; add this line to the table "
        "(at least ${needed} bytes, ${needed_hex}):\n"
        "    ${line}\n")
endif()

# parttool.py reports sizes in hex (0x1000); math() reads both.
math(EXPR part_size "${PARTITION_SIZE}")
if(model_size GREATER part_size)
    math(EXPR part_hex "${part_size}" OUTPUT_FORMAT HEXADECIMAL)
    message(FATAL_ERROR
        "espdl_streaming_add_model(${NAME}): ${file_name} is ${model_size} bytes but partition "
        "'${LABEL}' is ${part_size} bytes (${part_hex}). It needs at least ${needed} bytes "
        "(${needed_hex}); in ${CSV} make the line:\n"
        "    ${line}\n")
endif()

file(WRITE "${STAMP}" "${model_size} <= ${part_size}\n")
