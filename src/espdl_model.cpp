/*
 * model_interface over ESP-DL's dl::Model (chips only).
 *
 * dl::Model's constructor reports load failures only in the log, so open_model() checks the
 * result itself. Tensor pointers are cached in name order at open time: run() does no map
 * lookups and no allocation. Only API present since ESP-DL 3.3.0 is used (get_exponent(), not
 * the later per-channel ExponentInfo): activations are per-tensor.
 */
#include "espdl_streaming/backend.hpp"

#include <cstdint>
#include <new>

#include "dl_model_base.hpp"
#include "esp_partition.h"
#include "espdl_streaming/model_check.hpp"

namespace espdl_streaming {
namespace {

constexpr const char *TAG = "espdl_streaming";
/* Input and output tensors a model may have; streaming models use 1 input and a few outputs. */
constexpr uint32_t max_tensors = 16;

bool to_dtype(dl::dtype_t in, dtype *out)
{
    switch (in) {
    case dl::DATA_TYPE_INT8:
        *out = dtype::int8;
        return true;
    case dl::DATA_TYPE_INT16:
        *out = dtype::int16;
        return true;
    case dl::DATA_TYPE_FLOAT: /* real values: ESP-DL's Softmax output */
        *out = dtype::float32;
        return true;
    default:
        return false;
    }
}

class espdl_model final : public model_interface {
public:
    explicit espdl_model(dl::Model *model) : m_model(model) {}
    ~espdl_model() override { delete m_model; }

    /* Cache the model's tensors in name order (std::map iteration order) and check them. */
    esp_err_t bind()
    {
        std::map<std::string, dl::TensorBase *> &inputs = m_model->get_inputs();
        std::map<std::string, dl::TensorBase *> &outputs = m_model->get_outputs();
        ESPDL_STREAMING_RETURN_ON_FALSE(!inputs.empty() && !outputs.empty(), ESP_FAIL, TAG,
                                        "ESP-DL could not load the model (see the log above): no inputs or outputs");
        ESPDL_STREAMING_RETURN_ON_FALSE(inputs.size() <= max_tensors && outputs.size() <= max_tensors,
                                        ESP_ERR_NOT_SUPPORTED, TAG, "model has more than %lu inputs or outputs",
                                        static_cast<unsigned long>(max_tensors));
        for (auto &entry : inputs) {
            ESPDL_STREAMING_RETURN_ON_ERROR(check_tensor(entry.first.c_str(), entry.second));
            m_inputs[m_input_count++] = entry.second;
        }
        for (auto &entry : outputs) {
            ESPDL_STREAMING_RETURN_ON_ERROR(check_tensor(entry.first.c_str(), entry.second));
            m_outputs[m_output_count++] = entry.second;
        }
        return ESP_OK;
    }

    uint32_t input_count() const override { return m_input_count; }
    uint32_t output_count() const override { return m_output_count; }

    esp_err_t input(uint32_t index, tensor_ref *out) override
    {
        ESPDL_STREAMING_RETURN_ON_FALSE(index < m_input_count && out != nullptr, ESP_ERR_INVALID_ARG, TAG,
                                        "input %lu out of range", static_cast<unsigned long>(index));
        return describe(m_inputs[index], out);
    }

    esp_err_t output(uint32_t index, tensor_ref *out) override
    {
        ESPDL_STREAMING_RETURN_ON_FALSE(index < m_output_count && out != nullptr, ESP_ERR_INVALID_ARG, TAG,
                                        "output %lu out of range", static_cast<unsigned long>(index));
        return describe(m_outputs[index], out);
    }

    esp_err_t run() override
    {
        m_model->run();
        return ESP_OK;
    }

    esp_err_t reset() override
    {
        m_model->reset();
        return ESP_OK;
    }

private:
    static esp_err_t check_tensor(const char *name, dl::TensorBase *t)
    {
        ESPDL_STREAMING_RETURN_ON_FALSE(t != nullptr && t->data != nullptr, ESP_FAIL, TAG,
                                        "ESP-DL could not load the model (see the log above): tensor '%s' has no "
                                        "buffer",
                                        name);
        dtype type;
        ESPDL_STREAMING_RETURN_ON_FALSE(to_dtype(t->get_dtype(), &type), ESP_ERR_NOT_SUPPORTED, TAG,
                                        "tensor '%s' has dtype %s; only int8, int16 and float32 are supported", name,
                                        t->get_dtype_string());
        return ESP_OK;
    }

    static esp_err_t describe(dl::TensorBase *t, tensor_ref *out)
    {
        dtype type = dtype::int8;
        to_dtype(t->get_dtype(), &type); /* checked in bind() */
        out->data = t->data;
        out->type = type;
        out->exponent = t->get_exponent();
        out->elements = static_cast<uint32_t>(t->get_size());
        const size_t ndim = t->shape.size();
        out->ndim = static_cast<uint8_t>(ndim > 255 ? 255 : ndim);
        for (size_t i = 0; i < max_ndim; ++i) {
            out->shape[i] = i < ndim ? t->shape[i] : 0;
        }
        return ESP_OK;
    }

    dl::Model *m_model;
    dl::TensorBase *m_inputs[max_tensors] = {};
    dl::TensorBase *m_outputs[max_tensors] = {};
    uint32_t m_input_count = 0;
    uint32_t m_output_count = 0;
};

} // namespace

esp_err_t open_model(const model_source &src, model_interface **out)
{
    ESPDL_STREAMING_RETURN_ON_FALSE(out != nullptr, ESP_ERR_INVALID_ARG, TAG, "open_model: out is null");
    *out = nullptr;

    dl::Model *model = nullptr;
    if (src.where == placement::rodata) {
        ESPDL_STREAMING_RETURN_ON_FALSE(src.rodata != nullptr, ESP_ERR_INVALID_ARG, TAG, "open_model: no model data");
        ESPDL_STREAMING_RETURN_ON_FALSE((reinterpret_cast<uintptr_t>(src.rodata) & 15u) == 0, ESP_ERR_INVALID_ARG, TAG,
                                        "open_model: model data at %p is not 16-byte aligned", src.rodata);
        model = new (std::nothrow)
            dl::Model(reinterpret_cast<const char *>(src.rodata), fbs::MODEL_LOCATION_IN_FLASH_RODATA);
    } else if (src.where == placement::partition) {
        ESPDL_STREAMING_RETURN_ON_FALSE(src.partition_label != nullptr, ESP_ERR_INVALID_ARG, TAG,
                                        "open_model: no partition label");
        model = new (std::nothrow) dl::Model(src.partition_label, fbs::MODEL_LOCATION_IN_FLASH_PARTITION);
    } else {
        ESP_LOGE(TAG, "open_model: unknown placement %d", static_cast<int>(src.where));
        return ESP_ERR_INVALID_ARG;
    }
    ESPDL_STREAMING_RETURN_ON_FALSE(model != nullptr, ESP_ERR_NO_MEM, TAG, "open_model: out of memory");

    espdl_model *wrapped = new (std::nothrow) espdl_model(model);
    if (wrapped == nullptr) {
        delete model;
        ESP_LOGE(TAG, "open_model: out of memory");
        return ESP_ERR_NO_MEM;
    }
    const esp_err_t ret = wrapped->bind();
    if (ret != ESP_OK) {
        if (src.where == placement::partition) {
            ESP_LOGE(TAG, "open_model: partition '%s' does not hold a loadable .espdl (flashed?)", src.partition_label);
        }
        delete wrapped;
        return ret;
    }
    *out = wrapped;
    return ESP_OK;
}

void close_model(model_interface *model)
{
    delete model;
}

esp_err_t check_partition_model(const char *model_name, const char *label, uint32_t expected_bytes,
                                uint32_t expected_crc32)
{
    const esp_partition_t *part = esp_partition_find_first(ESP_PARTITION_TYPE_DATA, ESP_PARTITION_SUBTYPE_ANY, label);
    ESPDL_STREAMING_RETURN_ON_FALSE(part != nullptr, ESP_ERR_NOT_FOUND, model_name,
                                    "no data partition '%s' in the partition table", label);
    ESPDL_STREAMING_RETURN_ON_FALSE(part->size >= expected_bytes, ESP_ERR_INVALID_SIZE, model_name,
                                    "partition '%s' holds %lu bytes, the model needs %lu", label,
                                    static_cast<unsigned long>(part->size), static_cast<unsigned long>(expected_bytes));
    /* Only the model's bytes, and only for the check: ESP-DL maps the whole partition itself once
     * this mapping is gone, so the two never hold MMU pages at the same time. */
    const void *bytes = nullptr;
    esp_partition_mmap_handle_t map = 0;
    ESPDL_STREAMING_RETURN_ON_ERROR(esp_partition_mmap(part, 0, expected_bytes, ESP_PARTITION_MMAP_DATA, &bytes, &map));
    const esp_err_t ret = check_partition_bytes(model_name, label, bytes, expected_bytes, expected_crc32);
    esp_partition_munmap(map);
    return ret;
}

} // namespace espdl_streaming
