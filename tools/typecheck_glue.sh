#!/usr/bin/env bash
# Type-check the chip-only C++ (the dl::Model backend and a generated model class) against the
# real ESP-DL and ESP-IDF headers, with the host g++ standing in for the cross compilers.
#
#   ESPDL_DIR=/path/to/esp-dl/esp-dl IDF_PATH=/path/to/esp-idf [DL_FFT_DIR=...] [GLUE_DIRS="out/demo/esp32p4 ..."] \
#       tools/typecheck_glue.sh [target...]
#
# ESPDL_DIR is the ESP-DL component (the folder holding dl/ and fbs_loader/), IDF_PATH an ESP-IDF
# work tree; DL_FFT_DIR the espressif/dl_fft component dl::audio includes (default: tools/dl_fft of the
# ESP-DL repository ESPDL_DIR is in); targets default to "esp32p4 esp32s3". Nothing is built or linked (-fsyntax-only):
# this catches API drift in ESP-DL and mistakes in the templates before a chip build does.
# A hand-made sdkconfig.h stands in for the build's, and a forced-include shim neutralises the
# pointer-to-uint32_t casts in esp_cpu.h that do not compile on a 64-bit host. Dev tool only:
# CI has no ESP-DL/ESP-IDF sources.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${ESPDL_DIR:?set ESPDL_DIR to the esp-dl component directory (contains dl/ and fbs_loader/)}"
: "${IDF_PATH:?set IDF_PATH to an ESP-IDF work tree}"
[[ -f "$ESPDL_DIR/dl/model/include/dl_model_base.hpp" ]] || { echo "error: no ESP-DL in $ESPDL_DIR" >&2; exit 2; }
[[ -f "$IDF_PATH/components/esp_common/include/esp_err.h" ]] || { echo "error: no ESP-IDF in $IDF_PATH" >&2; exit 2; }
DL_FFT_DIR=${DL_FFT_DIR:-$ESPDL_DIR/../tools/dl_fft}
[[ -f "$DL_FFT_DIR/dl_fft.hpp" ]] || {
    echo "error: no dl_fft component in $DL_FFT_DIR (dl::audio needs it): set DL_FFT_DIR" >&2
    exit 2
}
PYTHON=${PYTHON:-$([[ -x "$ROOT/.venv/bin/python" ]] && echo "$ROOT/.venv/bin/python" || echo python3)}
CXX=${CXX:-g++}
TARGETS=("$@")
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=(esp32p4 esp32s3)

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# Four generated classes: one linked into rodata, one read from a partition, and two with a speech front
# end (fbank, mfcc: push_samples() over dl::audio); the glue description is the one python/tests/test_codegen.py
# compiles and streams (python/tests/glue_fixture.py).
PYTHONPATH="$ROOT/python:$ROOT/python/tests${PYTHONPATH:+:$PYTHONPATH}" \
    "$PYTHON" -m glue_fixture "$WORK" kws:rodata kws_part:partition kws_fbank:rodata:fbank kws_mfcc:partition:mfcc

cat > "$WORK/shim.h" <<'H'
/* Forced include: esp_cpu.h casts pointers to uint32_t, an error on a 64-bit host. Define the
 * helpers those casts are passed to as macros that drop their argument while esp_cpu.h is
 * parsed (it is #pragma once, so later includes are no-ops), then restore them. */
#pragma once
#if defined(__riscv)
#include "riscv/rv_utils.h"
#define rv_utils_set_xtvec(addr) ((void)0)
#define rv_utils_set_mtvt(addr) ((void)0)
#define rv_utils_set_xtvt(addr) ((void)0)
#include "esp_cpu.h"
#undef rv_utils_set_xtvec
#undef rv_utils_set_mtvt
#undef rv_utils_set_xtvt
#elif defined(__XTENSA__)
#include "xt_utils.h"
#define xt_utils_set_vecbase(addr) ((void)0)
#include "esp_cpu.h"
#undef xt_utils_set_vecbase
#endif
H

write_sdkconfig() { # target arch chip_id cpu_mhz
    mkdir -p "$WORK/$1"
    local upper
    upper=$(echo "$1" | tr '[:lower:]' '[:upper:]')
    cat > "$WORK/$1/sdkconfig.h" <<H
#pragma once
#define CONFIG_IDF_TARGET "$1"
#define CONFIG_IDF_TARGET_$upper 1
#define CONFIG_IDF_TARGET_ARCH "$2"
#define CONFIG_IDF_TARGET_ARCH_$(echo "$2" | tr '[:lower:]' '[:upper:]') 1
#define CONFIG_IDF_FIRMWARE_CHIP_ID $3
#define CONFIG_SOC_CPU_CORES_NUM 2
#define CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ $4
#define CONFIG_FREERTOS_HZ 100
#define CONFIG_FREERTOS_NUMBER_OF_CORES 2
#define CONFIG_FREERTOS_MAX_TASK_NAME_LEN 16
#define CONFIG_FREERTOS_TASK_NOTIFICATION_ARRAY_ENTRIES 1
#define CONFIG_FREERTOS_THREAD_LOCAL_STORAGE_POINTERS 1
#define CONFIG_FREERTOS_IDLE_TASK_STACKSIZE 1536
#define CONFIG_FREERTOS_ISR_STACKSIZE 1536
#define CONFIG_FREERTOS_TIMER_QUEUE_LENGTH 10
#define CONFIG_FREERTOS_TIMER_TASK_PRIORITY 1
#define CONFIG_FREERTOS_TIMER_TASK_STACK_DEPTH 2048
#define CONFIG_FREERTOS_TIMER_SERVICE_TASK_NAME "Tmr Svc"
#define CONFIG_FREERTOS_TIMER_SERVICE_TASK_CORE_AFFINITY 0x7FFFFFFF
#define CONFIG_FREERTOS_QUEUE_REGISTRY_SIZE 0
#define CONFIG_FREERTOS_USE_TIMERS 1
#define CONFIG_FREERTOS_CHECK_STACKOVERFLOW_CANARY 1
#define CONFIG_FREERTOS_TLSP_DELETION_CALLBACKS 1
#define CONFIG_LIBC_PICOLIBC 1
#define CONFIG_LOG_DEFAULT_LEVEL 3
#define CONFIG_LOG_MAXIMUM_LEVEL 3
#define CONFIG_LOG_TIMESTAMP_SOURCE_RTOS 1
#define CONFIG_LOG_VERSION_1 1
#define CONFIG_LOG_VERSION 1
#define CONFIG_SPIRAM 1
H
}

typecheck() { # target
    local t=$1 arch_flags idf_arch soc_reg dl_isa
    case $t in
    esp32p4)
        write_sdkconfig "$t" riscv 0x0012 360
        arch_flags=(-D__riscv -D__riscv_xlen=32)
        idf_arch=(riscv/include freertos/FreeRTOS-Kernel/portable/riscv/include/freertos freertos/config/riscv/include)
        soc_reg=soc/$t/register/hw_ver3
        dl_isa=(dl/base/isa/esp32p4) ;;
    esp32s3)
        write_sdkconfig "$t" xtensa 0x0009 240
        arch_flags=(-D__XTENSA__)
        idf_arch=(xtensa/include "xtensa/$t/include" freertos/FreeRTOS-Kernel/portable/xtensa/include/freertos
                  freertos/config/xtensa/include)
        soc_reg=soc/$t/register
        dl_isa=(dl/base/isa/tie728 dl/base/isa/xtensa) ;;
    *)
        echo "error: unsupported target $t (esp32p4, esp32s3)" >&2
        return 2 ;;
    esac
    local idf_dirs=(freertos/FreeRTOS-Kernel/include freertos/config/include freertos/config/include/freertos
        freertos/esp_additions/include log/include heap/include esp_common/include esp_system/include
        esp_hw_support/include esp_hw_support/include/soc esp_hw_support/etm/include soc/include "soc/$t/include"
        "$soc_reg" esp_rom/include "esp_rom/$t/include" "esp_rom/$t/include/$t" "esp_rom/$t" hal/include
        hal/platform_port/include esp_timer/include esp_partition/include esp_blockdev/include spi_flash/include
        esp_mm/include "${idf_arch[@]}")
    local dl_dirs=(dl dl/tool/include dl/tensor/include dl/base dl/base/isa dl/math/include dl/model/include
        dl/module/include fbs_loader/include audio/common audio/speech_features "${dl_isa[@]}")
    # ESPDL_STREAMING_REQUIRE_DL_AUDIO: src/espdl_frontend.cpp fails instead of compiling its no-dl::audio branch.
    local flags=(-std=gnu++17 -fsyntax-only -fno-rtti -fno-exceptions -Wall -Wextra -Werror "${arch_flags[@]}"
        -DESPDL_STREAMING_REQUIRE_DL_AUDIO
        -I "$WORK/$t" -include "$WORK/shim.h" -I "$ROOT/include" -I "$WORK")
    local d
    for d in "${dl_dirs[@]}"; do flags+=(-isystem "$ESPDL_DIR/$d"); done
    for d in . base base/isa; do flags+=(-isystem "$DL_FFT_DIR/$d"); done
    for d in "${idf_dirs[@]}"; do flags+=(-isystem "$IDF_PATH/components/$d"); done
    # esp_libc's platform headers wrap newlib/picolibc ones; after the host libc, only its own headers are found.
    flags+=(-idirafter "$IDF_PATH/components/esp_libc/platform_include")

    local f extra=() d
    # GLUE_DIRS: directories of real build outputs (NAME.cpp + NAME.hpp) to check as well.
    for d in ${GLUE_DIRS:-}; do
        for f in "$d"/*.cpp; do [[ -f "$f" ]] && extra+=("$f"); done
    done
    for f in "$ROOT/src/espdl_model.cpp" "$ROOT/src/espdl_frontend.cpp" "$ROOT/src/audio_frontend.cpp" \
             "$ROOT/src/frontend_self_test.cpp" \
             "$ROOT/src/stream_runner.cpp" "$ROOT/src/quantize.cpp" "$ROOT/src/self_test.cpp" \
             "$ROOT/src/model_loader.cpp" "$WORK/kws.cpp" "$WORK/kws_part.cpp" "$WORK/kws_fbank.cpp" \
             "$WORK/kws_mfcc.cpp" "${extra[@]}"; do
        "$CXX" "${flags[@]}" -I "$(dirname "$f")" "$f"
        echo "$t: ok ${f#"$ROOT/"}" | sed "s|$WORK/|generated/|"
    done
}

for t in "${TARGETS[@]}"; do
    typecheck "$t"
done
echo "typecheck passed for: ${TARGETS[*]}"
