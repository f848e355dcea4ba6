/*
 * The host engine's model: host_model's run/reset/input/output, open_model_bytes() (parse, then
 * build) and the component's open_model()/close_model() for ESP-IDF's linux target and plain host
 * builds, where ESP-DL does not exist.
 * Not here: parsing (espdl_file.cpp), planning (builder.cpp, prepare.cpp), element access (element.cpp).
 */
#include <cstdlib>
#include <new>

#include "host_builder.hpp"

namespace espdl_streaming {
namespace {
constexpr const char *TAG = "espdl_streaming";
}

namespace host {

namespace {

void describe(const slot &s, tensor_ref *out)
{
    out->data = s.data;
    /* finish_io() admits int8, int16 and (outputs only) float32 */
    out->type = s.type == etype::f32 ? dtype::float32 : s.type == etype::i16 ? dtype::int16 : dtype::int8;
    out->exponent = s.type == etype::f32 ? 0 : s.exponent;
    out->elements = static_cast<uint32_t>(s.count);
    out->ndim = s.shape.rank;
    for (uint8_t i = 0; i < max_ndim; ++i) {
        out->shape[i] = i < s.shape.rank ? static_cast<int32_t>(s.shape.dims[i]) : 0;
    }
}

} // namespace

esp_err_t host_model::input(uint32_t index, tensor_ref *out)
{
    ESPDL_STREAMING_RETURN_ON_FALSE(index < m_input_count && out != nullptr, ESP_ERR_INVALID_ARG, TAG,
                                    "input %lu out of range", static_cast<unsigned long>(index));
    describe(*m_inputs[index], out);
    return ESP_OK;
}

esp_err_t host_model::output(uint32_t index, tensor_ref *out)
{
    ESPDL_STREAMING_RETURN_ON_FALSE(index < m_output_count && out != nullptr, ESP_ERR_INVALID_ARG, TAG,
                                    "output %lu out of range", static_cast<unsigned long>(index));
    describe(*m_outputs[index], out);
    return ESP_OK;
}

esp_err_t host_model::run()
{
    for (uint32_t n = 0; n < m_plan_count; ++n) {
        node_plan &p = m_plans[n];
        for (uint32_t i = 0; i < p.in_count; ++i) {
            if (p.want_real[i] && !p.in[i]->constant) {
                load_real(*p.in[i], const_cast<double *>(p.x[i]));
            }
        }
        p.run(run_ctx{p, m_mode});
        for (uint32_t o = 0; o < p.out_count; ++o) {
            if (p.real_out[o]) {
                store_real(*p.out[o], p.y[o], m_mode);
            }
        }
    }
    return ESP_OK;
}

esp_err_t host_model::reset()
{
    for (uint32_t i = 0; i < m_state_count; ++i) {
        std::memset(m_states[i], 0, m_state_bytes[i]);
    }
    return ESP_OK;
}

void destroy(host_model *model)
{
    model->~host_model();
    std::free(model);
}

esp_err_t open_model_bytes(const uint8_t *data, size_t size, rounding mode, bool quiet, error_sink &err,
                           host_model **out)
{
    *out = nullptr;
    if (data == nullptr) {
        return err.set(ESP_ERR_INVALID_ARG, "open_model: no model data");
    }
    if (mode != rounding::half_even && mode != rounding::half_up) {
        return err.set(ESP_ERR_INVALID_ARG, "open_model: unknown rounding %d", static_cast<int>(mode));
    }
    /* Constructed in malloc'ed memory, like every allocation of the engine (see arena). */
    void *storage = std::malloc(sizeof(host_model));
    if (storage == nullptr) {
        return err.set(ESP_ERR_NO_MEM, "open_model: out of memory");
    }
    host_model *model = new (storage) host_model();
    model->m_mode = mode;
    esp_err_t ret = parse_espdl(data, size, model->m_mem, err, &model->m_graph);
    if (ret == ESP_OK) {
        engine_builder builder(*model, err);
        ret = builder.build();
    }
    if (ret != ESP_OK) {
        if (!err.failed()) {
            err.set(ret, "could not open the model");
        }
        if (!quiet) {
            ESP_LOGE(TAG, "%s", err.message());
        }
        destroy(model);
        return ret;
    }
    *out = model;
    return ESP_OK;
}

} // namespace host

esp_err_t open_model(const model_source &src, model_interface **out)
{
    ESPDL_STREAMING_RETURN_ON_FALSE(out != nullptr, ESP_ERR_INVALID_ARG, TAG, "open_model: out is null");
    *out = nullptr;
    if (src.where == placement::partition) {
        ESP_LOGE(TAG,
                 "open_model: the host engine reads models linked into the app (PLACEMENT RODATA); partition '%s' "
                 "cannot be read on this target",
                 src.partition_label != nullptr ? src.partition_label : "(null)");
        return ESP_ERR_NOT_SUPPORTED;
    }
    ESPDL_STREAMING_RETURN_ON_FALSE(src.where == placement::rodata, ESP_ERR_INVALID_ARG, TAG,
                                    "open_model: unknown placement %d", static_cast<int>(src.where));
    ESPDL_STREAMING_RETURN_ON_FALSE(src.rodata != nullptr, ESP_ERR_INVALID_ARG, TAG, "open_model: no model data");
    /* The same requirement as ESP-DL's rodata loader, so a host run catches what a chip would. */
    ESPDL_STREAMING_RETURN_ON_FALSE((reinterpret_cast<uintptr_t>(src.rodata) & 15u) == 0, ESP_ERR_INVALID_ARG, TAG,
                                    "open_model: model data at %p is not 16-byte aligned",
                                    static_cast<const void *>(src.rodata));
    /* Only a pointer is known: the header's size bounds every read (as dl::Model trusts it too);
     * a header that is not EDL1/EDL2 is reported from its first 12 bytes. */
    size_t size = host::espdl_size_from_header(src.rodata);
    if (size == 0) {
        size = 12;
    }
    host::error_sink err;
    host::host_model *model = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(host::open_model_bytes(src.rodata, size, src.round_mode, false, err, &model));
    *out = model;
    return ESP_OK;
}

void close_model(model_interface *model)
{
    if (model != nullptr) {
        host::destroy(static_cast<host::host_model *>(model));
    }
}

} // namespace espdl_streaming
