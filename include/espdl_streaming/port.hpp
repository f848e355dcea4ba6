/*
 * Platform port: esp_err_t, error codes, logging and early-return helpers.
 *
 * On ESP-IDF (any target, including linux) the IDF headers are used. A plain host build
 * (tests/host, the codegen tests) gets minimal equivalents so the runtime compiles anywhere.
 */
#pragma once

#if __has_include("esp_err.h") && __has_include("esp_log.h")
#include "esp_err.h"
#include "esp_log.h"
#define ESPDL_STREAMING_HAS_IDF 1
#else
#include <cstdint>
#include <cstdio>

#define ESPDL_STREAMING_HAS_IDF 0

typedef int esp_err_t;

#define ESP_OK 0
#define ESP_FAIL -1
#define ESP_ERR_NO_MEM 0x101
#define ESP_ERR_INVALID_ARG 0x102
#define ESP_ERR_INVALID_STATE 0x103
#define ESP_ERR_INVALID_SIZE 0x104
#define ESP_ERR_NOT_FOUND 0x105
#define ESP_ERR_NOT_SUPPORTED 0x106
#define ESP_ERR_INVALID_VERSION 0x10A

#define ESPDL_STREAMING_HOST_LOG(letter, tag, format, ...) \
    std::fprintf(stderr, letter " (%s): " format "\n", tag, ##__VA_ARGS__)
#define ESP_LOGE(tag, format, ...) ESPDL_STREAMING_HOST_LOG("E", tag, format, ##__VA_ARGS__)
#define ESP_LOGW(tag, format, ...) ESPDL_STREAMING_HOST_LOG("W", tag, format, ##__VA_ARGS__)
#define ESP_LOGI(tag, format, ...) ESPDL_STREAMING_HOST_LOG("I", tag, format, ##__VA_ARGS__)
#endif

/* Return the error of `x` if it is not ESP_OK (ESP_RETURN_ON_ERROR without the log). */
#define ESPDL_STREAMING_RETURN_ON_ERROR(x) \
    do {                                   \
        const esp_err_t err_rc_ = (x);     \
        if (err_rc_ != ESP_OK) {           \
            return err_rc_;                \
        }                                  \
    } while (0)

/* Log with TAG and return `err` if `cond` is false (ESP_RETURN_ON_FALSE without esp_check.h). */
#define ESPDL_STREAMING_RETURN_ON_FALSE(cond, err, tag, format, ...) \
    do {                                                             \
        if (!(cond)) {                                               \
            ESP_LOGE(tag, format, ##__VA_ARGS__);                    \
            return (err);                                            \
        }                                                            \
    } while (0)
