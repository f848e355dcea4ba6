/*
 * load_model() / unload_model(): a generated class's init() and deinit(), for both placements and
 * every build (backend.hpp). The engine is the build's open_model(); what a partition needs depends
 * on the target:
 *
 * - chips: dl::Model maps the partition itself; the CRC-32 check maps the model's bytes only for
 *   the check (check_partition_model(), src/espdl_model.cpp);
 * - ESP-IDF's linux target: the host engine reads memory, so the partition of the emulated flash
 *   (preloaded with the .espdl by the build) is mapped here and stays mapped with the engine.
 *   esp_partition is linked into this component when the build has it (CMakeLists.txt: an optional
 *   requirement; a PARTITION model's component requires it);
 * - plain host builds have no partitions: open_model() reports it.
 */
#include "espdl_streaming/backend.hpp"
#include "espdl_streaming/model_check.hpp"

#if defined(ESP_PLATFORM) && __has_include("sdkconfig.h")
#include "sdkconfig.h"
#endif
#if ESPDL_STREAMING_HAS_IDF && CONFIG_IDF_TARGET_LINUX
#define ESPDL_STREAMING_PARTITION_BACKEND_LINUX 1
#if __has_include("esp_partition.h")
#include "esp_partition.h"
#define ESPDL_STREAMING_HAS_PARTITIONS 1
#else
#define ESPDL_STREAMING_HAS_PARTITIONS 0
#endif
#else
#define ESPDL_STREAMING_PARTITION_BACKEND_LINUX 0
#endif

namespace espdl_streaming {
namespace {

constexpr const char *TAG = "espdl_streaming";

esp_err_t open_into(const model_source &src, loaded_model *out)
{
    model_interface *engine = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(open_model(src, &engine));
    out->engine = engine;
    return ESP_OK;
}

#if ESPDL_STREAMING_PARTITION_BACKEND_LINUX
/* Map the whole partition, check its model, open it from the mapping; unmap on failure. */
esp_err_t load_mapped_partition(const model_source &src, loaded_model *out)
{
#if ESPDL_STREAMING_HAS_PARTITIONS
    const char *name = src.model_name;
    const char *label = src.partition_label;
    const esp_partition_t *part = esp_partition_find_first(ESP_PARTITION_TYPE_DATA, ESP_PARTITION_SUBTYPE_ANY, label);
    ESPDL_STREAMING_RETURN_ON_FALSE(part != nullptr, ESP_ERR_NOT_FOUND, name, "no data partition '%s' in the table",
                                    label);
    ESPDL_STREAMING_RETURN_ON_FALSE(part->size >= src.espdl_bytes, ESP_ERR_INVALID_SIZE, name,
                                    "partition '%s' holds %lu bytes, the model needs %lu", label,
                                    static_cast<unsigned long>(part->size),
                                    static_cast<unsigned long>(src.espdl_bytes));
    const void *bytes = nullptr;
    esp_partition_mmap_handle_t map = 0;
    ESPDL_STREAMING_RETURN_ON_ERROR(esp_partition_mmap(part, 0, part->size, ESP_PARTITION_MMAP_DATA, &bytes, &map));
    /* The partition may hold an older model: app-flash and app-only OTA do not write it. */
    esp_err_t ret =
        src.check_crc32 ? check_partition_bytes(name, label, bytes, src.espdl_bytes, src.espdl_crc32) : ESP_OK;
    if (ret == ESP_OK) {
        model_source mapped = src;
        mapped.where = placement::rodata;
        mapped.rodata = static_cast<const uint8_t *>(bytes);
        mapped.partition_label = nullptr;
        ret = open_into(mapped, out);
    }
    if (ret != ESP_OK) {
        esp_partition_munmap(map);
        return ret;
    }
    out->partition_map = map;
    out->partition_mapped = true;
    return ESP_OK;
#else
    (void)out;
    ESP_LOGE(src.model_name,
             "partition '%s': the host engine maps partitions with esp_partition; add it to "
             "the PRIV_REQUIRES of the component that declares the model",
             src.partition_label);
    return ESP_ERR_NOT_SUPPORTED;
#endif
}
#endif

} // namespace

esp_err_t load_model(const model_source &src, loaded_model *out)
{
    ESPDL_STREAMING_RETURN_ON_FALSE(out != nullptr && out->engine == nullptr && !out->partition_mapped,
                                    ESP_ERR_INVALID_ARG, TAG, "load_model: out is null or holds a model");
    const char *name = src.model_name != nullptr ? src.model_name : TAG;
    model_source checked = src;
    checked.model_name = name;
    if (src.where == placement::rodata) {
        /* Linked by the build step that generated the class, so never stale: a free header check only. */
        if (src.espdl_bytes != 0 && src.rodata != nullptr) {
            ESPDL_STREAMING_RETURN_ON_ERROR(check_linked_model(name, src.rodata, src.espdl_bytes));
        }
        return open_into(checked, out);
    }
    if (src.where == placement::partition && src.partition_label != nullptr) {
#if ESPDL_STREAMING_PARTITION_BACKEND_LINUX
        return load_mapped_partition(checked, out);
#elif ESPDL_STREAMING_HAS_IDF
        /* The partition may hold an older model: app-flash and app-only OTA do not write it. */
        if (src.check_crc32) {
            ESPDL_STREAMING_RETURN_ON_ERROR(
                check_partition_model(name, src.partition_label, src.espdl_bytes, src.espdl_crc32));
        }
#endif
    }
    return open_into(checked, out); /* the engine reports what it cannot open */
}

void unload_model(loaded_model *model)
{
    if (model == nullptr) {
        return;
    }
    close_model(model->engine);
#if ESPDL_STREAMING_PARTITION_BACKEND_LINUX && ESPDL_STREAMING_HAS_PARTITIONS
    if (model->partition_mapped) {
        esp_partition_munmap(model->partition_map);
    }
#endif
    *model = loaded_model{};
}

} // namespace espdl_streaming
