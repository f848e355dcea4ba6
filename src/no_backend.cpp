/*
 * No engine and no audio front end: for runtime-only builds whose tests inject their own model_interface
 * (tests/host, the codegen tests, the glue benchmark). The component itself links ESP-DL's
 * dl::Model on chips (espdl_model.cpp) and the host engine (src/host/) on the linux target.
 */
#include "espdl_streaming/audio_frontend.hpp"
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
    ESP_LOGE(TAG, "no inference engine in this build (runtime only): link the host engine (src/host/) or "
                  "inject a model_interface with init(model_interface *)");
    return ESP_ERR_NOT_SUPPORTED;
}

void close_model(model_interface *model)
{
    /* open_model() never returns a model here. */
    (void)model;
}

esp_err_t open_frontend(const frontend_spec &spec, feature_extractor **out)
{
    (void)spec;
    if (out != nullptr) {
        *out = nullptr;
    }
    ESP_LOGE(TAG, "no audio front end in this build (runtime only): link the host engine (src/host/) or give "
                  "audio_frontend::init() an extractor");
    return ESP_ERR_NOT_SUPPORTED;
}

void close_frontend(feature_extractor *extractor)
{
    /* open_frontend() never returns an extractor here. */
    (void)extractor;
}

} // namespace espdl_streaming
