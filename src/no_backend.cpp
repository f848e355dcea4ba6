/*
 * Backend for ESP-IDF's linux target and plain host builds: ESP-DL cannot be compiled there
 * (its FlatBuffers loader ships only as per-chip static libraries), and no host engine exists yet.
 * Tests inject their own model_interface instead.
 */
#include "espdl_streaming/backend.hpp"

namespace espdl_streaming {
namespace {
constexpr const char *TAG = "espdl_streaming";
}

esp_err_t open_model(const model_source &src, model_interface **out)
{
    (void)src;
    if (out != nullptr) {
        *out = nullptr;
    }
    ESP_LOGE(TAG, "no inference engine on this target: ESP-DL runs only on chips and a host engine is not "
             "available yet; inject a model_interface with init(model_interface *)");
    return ESP_ERR_NOT_SUPPORTED;
}

void close_model(model_interface *model)
{
    /* open_model() never returns a model here. */
    (void)model;
}

} // namespace espdl_streaming
